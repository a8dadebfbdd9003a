#!/usr/bin/env node
// chatctl's entry point: the only place that touches the process (argv, streams, environment, exit code).
import { run } from './run.js';

process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
