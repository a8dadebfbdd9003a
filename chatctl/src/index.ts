/**
 * chatctl as a library: every command as a function returning its report (the `--json` shapes), so tests
 * and the chaos suite drive the cluster exactly as an operator does. `run` is the whole command line.
 */
export { run, type RunIo } from './run.js';
export { CliError, EXIT, type ExitCode } from './exit-codes.js';
export { AdminClient, HttpError, type ConnectOptions } from './http.js';
export { parseArgs, DEFAULT_ROUTER } from './args.js';
export { renderTable, percent } from './table.js';
export { bar, progressFor, type Progress } from './progress.js';
export {
  status,
  waitForVersion,
  reportOf,
  statusExitCode,
  renderStatus,
  DEFAULT_VERSION_WAIT_MS,
  type StatusReport,
  type MemberStatus,
} from './commands/status.js';
export { plan, summarisePlan, renderPlan, type PlanReport, type PlanRequest } from './commands/plan.js';
export {
  drainNode,
  drainExitCode,
  renderDrain,
  DEFAULT_WAIT_MS,
  type DrainOptions,
  type DrainReport,
} from './commands/drain.js';
export {
  lookup,
  lookupExitCode,
  renderLookup,
  type LookupReport,
  type LookupRequest,
} from './commands/lookup.js';
export {
  shards,
  summariseShards,
  renderShards,
  type ShardsReport,
  type ShardRow,
} from './commands/shards.js';
export type * from './admin-types.js';
