/**
 * A thread that writes bodies into place: each one to its temp file, then renamed to its final name, with plain
 * synchronous calls on a thread of its own. The bodies queued during one turn of the event loop go to it in one
 * message, and it answers as it goes, about once a millisecond, with how many it has finished since its last answer
 * (in the order they were sent), the time they took, and the failures among them. Per body, that is a share of two
 * messages, against four trips through libuv's thread pool for `writeFile` and `rename`, and none of the kernel's
 * work on the loop's thread. The thread starts with the first body sent and is stopped by `close`; on Linux it runs
 * at a lower priority than the loop's thread (`niceness`), so that the loop goes first when the cores are short.
 *
 * @internal
 */
import { Worker } from "node:worker_threads"

// How far below the event loop's thread the writer runs (a nice value, added to the one it inherits). On a machine
// short of cores the thread's system calls (on ext4 about 200 µs of the kernel's time per body) competed with the
// loop for them: measured on two cores beside the bench's upstream, the loop's p99 delay on disk was 24 ms (median of
// ten runs) with the thread at the loop's priority and 20 ms ten steps below, in the same time for the job. The loop
// serves the API and drives every fetch; the bodies take the time it leaves. Linux only: there a nice value is the
// calling thread's own, where elsewhere `setPriority(0)` would lower the whole process. A refusal leaves the thread
// as it was.
const niceness = 10

// The thread's code, CommonJS (an `eval` worker): written out here so that every build (the app's bundles, the bench's,
// tsx in development and tests) starts it the same way, with no file to find next to the bundle.
const source = `"use strict"
const { parentPort } = require("node:worker_threads")
const fs = require("node:fs")
// A step below the thread that started it (see niceness).
if (process.platform === "linux") {
  try {
    const os = require("node:os")
    os.setPriority(0, Math.min(19, os.getPriority(0) + ${niceness}))
  } catch {}
}
parentPort.on("message", ({ temps, finals, bodies }) => {
  let done = 0
  let failures = []
  let since = performance.now()
  const answer = () => {
    const now = performance.now()
    parentPort.postMessage([done, failures, now - since])
    done = 0
    failures = []
    since = now
  }
  for (let i = 0; i < temps.length; i++) {
    try {
      fs.writeFileSync(temps[i], bodies[i])
      fs.renameSync(temps[i], finals[i])
    } catch (error) {
      try { fs.rmSync(temps[i], { force: true }) } catch {}
      const code = error && typeof error.code === "string" ? error.code : undefined
      failures.push([done, String(error && error.message), code])
    }
    done++
    if (i + 1 < temps.length && performance.now() - since >= 1) answer()
  }
  answer()
})
`

/** How a body's write ended: `undefined` once it is in place, or the error that stopped it (its temp file removed). */
export type Done = (error: Error | undefined) => void

/** The most bodies sent in one message. */
const maxBatch = 256

/** @internal */
export class WriterThread {
  /** `took(count, nanos)`: the thread wrote `count` bodies (or failed to) in `nanos`. */
  constructor(private readonly took: (count: number, nanos: number) => void) {}

  private worker: Worker | undefined
  // Waiting for the thread, in the order their bodies were sent; `head` is the next to finish.
  private sent: Array<Done> = []
  private head = 0
  private temps: Array<string> = []
  private finals: Array<string> = []
  private bodies: Array<Uint8Array> = []
  private queued: Array<Done> = []
  private flushing = false
  private idle: Array<() => void> = []

  /** Bodies sent to the thread or waiting to be, not yet in place. */
  get pending(): number {
    return this.sent.length - this.head + this.queued.length
  }

  /** Writes `body` to `temp`, then renames it to `final`; `done` is called once either way. */
  write(temp: string, final: string, body: Uint8Array, done: Done): void {
    this.temps.push(temp)
    this.finals.push(final)
    this.bodies.push(body)
    this.queued.push(done)
    if (this.queued.length >= maxBatch) this.flush()
    else if (!this.flushing) {
      this.flushing = true
      setImmediate(this.flushLater)
    }
  }

  /** Resolves once nothing is pending. */
  drained(): Promise<void> {
    if (this.pending === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  /** Waits until every body sent is written (or failed), then stops the thread. */
  close(): Promise<void> {
    return this.drained().then(() => {
      const worker = this.worker
      this.worker = undefined
      return worker === undefined ? undefined : worker.terminate().then(() => undefined)
    })
  }

  private readonly flushLater = () => {
    this.flushing = false
    this.flush()
  }

  private flush(): void {
    if (this.queued.length === 0) return
    const worker = this.worker ?? this.start()
    worker.postMessage({ temps: this.temps, finals: this.finals, bodies: this.bodies })
    for (const done of this.queued) this.sent.push(done)
    this.temps = []
    this.finals = []
    this.bodies = []
    this.queued = []
  }

  private start(): Worker {
    // The thread keeps no objects beyond one message's: a small heap (about 4 MB less memory than V8's defaults).
    const worker = new Worker(source, {
      eval: true,
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 }
    })
    worker.unref()
    worker.on("message", ([count, failures, millis]: [number, Array<[number, string, string | undefined]>, number]) => {
      this.took(count, millis * 1e6)
      const from = this.head
      this.head += count
      let f = 0
      for (let i = 0; i < count; i++) {
        const failure = f < failures.length && failures[f][0] === i ? failures[f++] : undefined
        this.sent[from + i](
          failure === undefined ? undefined : Object.assign(new Error(failure[1]), { code: failure[2] })
        )
      }
      this.settled()
    })
    // The thread failed or stopped by itself: what it held fails, and the next write starts another.
    const lost = (error: Error) => {
      if (this.worker !== worker) return
      this.worker = undefined
      const waiting = this.sent.slice(this.head)
      this.sent = []
      this.head = 0
      for (const done of waiting) done(error)
      this.settled()
    }
    worker.on("error", lost)
    worker.on("exit", (code) => lost(new Error(`the body writer thread stopped (exit code ${code})`)))
    this.worker = worker
    return worker
  }

  private settled(): void {
    if (this.head > 1024 && this.head * 2 > this.sent.length) {
      this.sent = this.sent.slice(this.head)
      this.head = 0
    }
    if (this.pending === 0 && this.idle.length > 0) {
      const idle = this.idle
      this.idle = []
      for (const resolve of idle) resolve()
    }
  }
}
