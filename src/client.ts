// Who asked a query, and how to answer them: what listeners hand the pipeline.

export type ClientTransport = 'udp' | 'tcp';

/** Who asked, and how to answer them (one object per query on UDP, per connection on TCP). */
export interface Client {
  readonly transport: ClientTransport;
  readonly address: string;
  readonly port: number;
  /** A query raced asks itself (search domains): not counted, not searched again. */
  readonly internal?: boolean;
  respond(reply: Buffer): void;
  /** Called instead of respond when raced ends a query with no reply (dropped, rate-limited): TCP stops owing it. */
  dropped?(): void;
}
