import { checkpointProblem, signCheckpoint, type SignedCheckpoint } from './checkpoint.js';
import { MerkleTree, leafHash } from './merkle.js';
import type { Keyring, SigningKey } from './signing-key.js';
import type { Witness } from './witness.js';

/** The log on disk contradicts a signed checkpoint: refuse to extend (and sign) it. */
export class EvidenceMismatch extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvidenceMismatch';
  }
}

export interface TransparencyLogOptions {
  key: SigningKey;
  /** The current key and the older ones still trusted. */
  keyring: Keyring;
  /** data_dir/evidence: every checkpoint, beside the log. */
  local: Witness;
  /** Outside data_dir; each receives every checkpoint. */
  witnesses: Witness[];
  origin: string;
  /** How long after the first unsigned entry a checkpoint is signed. */
  intervalMs: number;
  /** A witness that cannot take a checkpoint: reported, the others still get it. */
  onWitnessError?: (witness: Witness, err: Error) => void;
  now?: () => Date;
}

/**
 * The Merkle tree over every audit log line (each line's exact bytes is one leaf) and the
 * checkpoints signed over it: a few seconds after entries arrive, on demand (an evidence
 * export), and at shutdown.
 */
export class TransparencyLog {
  readonly tree = new MerkleTree();

  private latest: SignedCheckpoint | undefined;

  private timer: NodeJS.Timeout | undefined;

  private queue: Promise<unknown> = Promise.resolve();

  private closed = false;

  constructor(private readonly opts: TransparencyLogOptions) {}

  get keyId(): string {
    return this.opts.key.keyId;
  }

  get publicPem(): string {
    return this.opts.key.publicPem;
  }

  get keyring(): Keyring {
    return this.opts.keyring;
  }

  get witnesses(): Witness[] {
    return this.opts.witnesses;
  }

  get local(): Witness {
    return this.opts.local;
  }

  get latestCheckpoint(): SignedCheckpoint | undefined {
    return this.latest;
  }

  /** One audit log line, without its newline. */
  add(line: string): void {
    this.tree.append(leafHash(line));
    if (!this.closed && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.checkpoint().catch(() => undefined);
      }, this.opts.intervalMs);
      this.timer.unref();
    }
  }

  /**
   * At start-up, after every existing line was added: the log must extend the newest checkpoint
   * any witness (or the local store) holds. A shorter log was cut; another root was rewritten.
   */
  async assertExtendsWitnessed(): Promise<void> {
    let newest: { cp: SignedCheckpoint; from: string } | undefined;
    for (const w of [this.opts.local, ...this.opts.witnesses]) {
      const { checkpoints } = await w.read();
      for (const cp of checkpoints) {
        if (cp.origin !== this.opts.origin) continue;
        // A checkpoint we cannot check is a statement we cannot honour: after a key rotation the
        // old public key must stay listed, or nothing proves the log was not rewritten meanwhile.
        const why = checkpointProblem(cp, this.opts.keyring);
        if (why) throw new EvidenceMismatch(`${w.name} holds a checkpoint of ${cp.size} entries (${cp.time}) that is ${why}; after a key rotation list the old public key in evidence.previous_public_keys`);
        if (!newest || cp.size > newest.cp.size) newest = { cp, from: w.name };
      }
    }
    if (!newest) return;
    const { cp, from } = newest;
    if (cp.size > this.tree.size) {
      throw new EvidenceMismatch(`the audit log has ${this.tree.size} entries but ${from} holds a checkpoint of ${cp.size} signed at ${cp.time}: entries ${this.tree.size + 1}..${cp.size} were removed`);
    }
    if (this.tree.root(cp.size).toString('hex') !== cp.root) {
      throw new EvidenceMismatch(`the first ${cp.size} audit log entries do not match the checkpoint signed at ${cp.time} (${from}): an entry was changed, removed, inserted or reordered; run pam audit verify`);
    }
    this.latest = cp;
  }

  /** Signs the current tree (if it grew) and hands the checkpoint to every witness. */
  checkpoint(): Promise<SignedCheckpoint | undefined> {
    const run = async () => {
      const size = this.tree.size;
      if (size === 0 || (this.latest && this.latest.size >= size && this.latest.key_id === this.opts.key.keyId)) return this.latest;
      const cp = signCheckpoint({ origin: this.opts.origin, size, root: this.tree.root().toString('hex'), time: (this.opts.now?.() ?? new Date()).toISOString() }, this.opts.key);
      await this.opts.local.publish(cp);
      for (const w of this.opts.witnesses) {
        try {
          await w.publish(cp);
        } catch (err) {
          this.opts.onWitnessError?.(w, err as Error);
        }
      }
      this.latest = cp;
      return cp;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Shutdown: the last entries get their checkpoint. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.checkpoint();
  }
}
