import { setFlagsFromString } from 'node:v8';

/**
 * Garbage-collector setting for a process that relays bulk data (imported by both brokers).
 *
 * Every SSH packet and socket read is a fresh ArrayBuffer outside V8's heap (ssh2 allocates one
 * per packet), so a bulk transfer allocates several MiB of them per MiB relayed. They die young,
 * but V8 frees their memory on a background thread after each scavenge, and until it has, the
 * freed memory still counts as live. Measured at 100-150 MB/s, that stale count crossed V8's
 * limit in about half the runs and started a full mark-compact every 50-100 ms: about 2 ms of
 * extra CPU per relayed MiB (BENCHMARKS.md, SSH "Current figures"). Freeing it during the
 * scavenge itself keeps the count true: two mark-compacts per 300 MiB instead of 30.
 */
setFlagsFromString('--no-concurrent-array-buffer-sweeping');
