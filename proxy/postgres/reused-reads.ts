import type { Socket } from 'node:net';

/**
 * A socket's reads into one reused buffer, through net's `onread` option
 * (https://nodejs.org/api/net.html#socketconnectoptions-connectlistener): no Buffer is allocated
 * and no stream 'data' event is emitted per read, which is most of what a read costs the relay.
 *
 * While a hot consumer is set (`take`), each read is handed to it as a view of that buffer, valid
 * only during the call: the consumer parses it in place and copies what must outlive the call.
 * Bytes it gave to a socket write that the kernel has not taken yet still point into the buffer;
 * it then calls `pin()` and the next read goes into a fresh buffer (the old one stays with the
 * write). With no consumer set, each read is copied and emitted as 'data', so the login, the pool
 * and the close paths read the socket like any other.
 */
/** Reads taken through a reused buffer and fresh buffers taken because one was pinned, process-wide (tests). */
export const reusedReadCounts = { reads: 0, fresh: 0 };

export class ReusedReads {
  private buf: Buffer;
  private pinned = false;
  private socket: Socket | undefined;
  private consumer: ((chunk: Buffer) => void) | undefined;

  /** The `onread` option for `net.connect` (or `new net.Socket`). */
  readonly onread = {
    buffer: (): Buffer => this.next(),
    // true: keep reading (the consumer pauses the socket itself when a write backs up).
    callback: (n: number, buf: Uint8Array): boolean => (this.deliver((buf as Buffer).subarray(0, n)), true),
  };

  constructor(private readonly size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** The socket whose reads these are (where 'data' is emitted while no consumer is set). */
  attach(socket: Socket): void {
    this.socket = socket;
  }

  /** Sets (or with undefined clears) the consumer of reads as transient views. */
  take(consumer: ((chunk: Buffer) => void) | undefined): void {
    this.consumer = consumer;
  }

  /** The chunk just delivered is still referenced (a write in progress): do not read into it again. */
  pin(): void {
    this.pinned = true;
  }

  private next(): Buffer {
    if (this.pinned) {
      this.buf = Buffer.allocUnsafe(this.size);
      this.pinned = false;
      reusedReadCounts.fresh++;
    }
    return this.buf;
  }

  private deliver(chunk: Buffer): void {
    reusedReadCounts.reads++;
    if (this.consumer) this.consumer(chunk);
    else this.socket?.emit('data', Buffer.from(chunk));
  }
}
