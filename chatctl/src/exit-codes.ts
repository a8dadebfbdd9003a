/**
 * Exit codes scripts can rely on (docs/chatctl.md). One table, so every command maps its outcomes the
 * same way and a test can check each one.
 */
export const EXIT = {
  /** Done, healthy, found. */
  ok: 0,
  /** The condition asked about is false: a member not ready, a drain not done in time. */
  condition: 1,
  /** Bad command line: unknown command or option, missing or malformed argument. */
  usage: 2,
  /**
   * A router could not be reached, did not answer in time, or did not answer as an admin API (not JSON,
   * a status or a body the admin API does not give: `--router` points at something else).
   */
  unreachable: 3,
  /** A router refused the token (HTTP 401 or 403). */
  auth: 4,
  /** The named node or user is not there (or, for `plan add`, is already a member). */
  notFound: 5,
  /** The routers given disagree (owner-table version, members in the table, weights). */
  disagree: 6,
  /** chatctl itself failed unexpectedly (a bug: the message says what); never a cluster condition. */
  internal: 70,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An outcome that ends a command with a one-line message and an exit code (never a stack trace). */
export class CliError extends Error {
  readonly exitCode: ExitCode;

  constructor(exitCode: ExitCode, message: string) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}
