/**
 * Defaults shared by the config loader and the parts that can run without a loaded config
 * (tests, `startSshBroker`/`startPostgresBroker` called directly). One value per setting.
 */

/** `review_timeout`: how long a command or statement held by a `review` rule waits for an approver. */
export const DEFAULT_REVIEW_TIMEOUT_MS = 5 * 60_000;
