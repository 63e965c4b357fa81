/**
 * The RTP port pool: even ports in [portMin, portMax) (RTCP takes port + 1).
 *
 * Ports are handed out round-robin so a just-released port is not reused at once (late packets of
 * the old call would land in the new one). Ownership is explicit: whoever acquires must release,
 * and a double release is ignored, so a call that fails half-way cannot leak or free twice.
 */
export class PortPool {
  private readonly free: number[] = [];
  private readonly inUse = new Set<number>();

  constructor(portMin: number, portMax: number) {
    const first = portMin % 2 === 0 ? portMin : portMin + 1;
    for (let port = first; port + 1 <= portMax; port += 2) this.free.push(port);
  }

  acquire(): number | undefined {
    const port = this.free.shift();
    if (port !== undefined) this.inUse.add(port);
    return port;
  }

  release(port: number): void {
    if (!this.inUse.delete(port)) return;
    this.free.push(port);
  }

  get available(): number {
    return this.free.length;
  }

  get used(): number {
    return this.inUse.size;
  }
}
