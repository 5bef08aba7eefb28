/**
 * The storage's thread: the synchronous file system and SQLite work that the event loop's thread must not wait for,
 * on one thread of its own (a Node worker costs about 8 MB of memory, so both kinds share it).
 *
 * - Bodies (`write`): each one to its temp file, then renamed to its final name. The bodies queued during one turn of
 *   the event loop go in one message, and the thread answers as it goes, about once a millisecond, with how many it
 *   has finished since its last answer (in the order they were sent), the time they took, and the failures among
 *   them. Per body, that is a share of two messages, against four trips through libuv's thread pool for `writeFile`
 *   and `rename`, and none of the kernel's work on the loop's thread.
 * - SQLite's checkpoints (`checkpoints`): every `intervalMs` the thread copies the frames committed to a database's WAL
 *   into its file (`PRAGMA wal_checkpoint(PASSIVE)`), on a connection of its own, opened with the very better-sqlite3
 *   module the loop's connection runs on. A passive checkpoint takes no lock that a writer or a reader waits for.
 *
 * The thread starts with the first body sent or the first database given to it, and is stopped by `close`. If it
 * fails, the bodies it held fail, and the next body or a second later the databases it checkpointed start another.
 * On Linux it runs at a lower priority than the loop's thread (`niceness`), so that the loop goes first when the
 * cores are short.
 *
 * @internal
 */
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"

// How far below the event loop's thread the storage thread runs (a nice value, added to the one it inherits). On a
// machine short of cores its system calls (on ext4 about 200 µs of the kernel's time per body) competed with the loop
// for them: measured on two cores beside the bench's upstream, the loop's p99 delay on disk was 24 ms (median of ten
// runs) with the thread at the loop's priority and 20 ms ten steps below, in the same time for the job. The loop
// serves the API and drives every fetch; the storage takes the time it leaves. Linux only: there a nice value is the
// calling thread's own, where elsewhere `setPriority(0)` would lower the whole process. A refusal leaves the thread
// as it was.
const niceness = 10

// The thread's code, CommonJS (an `eval` worker): written out here so that every build (the app's bundles, the bench's,
// tsx in development and tests) starts it the same way, with no file to find next to the bundle. A message of bodies
// is answered with arrays (`[done, failures, millis]`); the databases' with objects: `ready` once the connection is
// open or `failed` if it cannot be, `error` for each kind of checkpoint failure (once), `stopped` once it is closed.
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
const write = ({ temps, finals, bodies }) => {
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
}
const databases = new Map()
const checkpoint = (id) => {
  const database = databases.get(id)
  try {
    database.db.pragma("wal_checkpoint(PASSIVE)")
  } catch (error) {
    const message = String(error && error.message)
    if (database.reported.has(message)) return
    database.reported.add(message)
    parentPort.postMessage({ _tag: "error", id, message })
  }
}
const open = ({ id, driver, filename, intervalMs }) => {
  try {
    const Database = require(driver)
    const db = new Database(filename, { fileMustExist: true })
    db.pragma("synchronous = NORMAL")
    databases.set(id, { db, reported: new Set(), timer: setInterval(() => checkpoint(id), intervalMs) })
    parentPort.postMessage({ _tag: "ready", id })
  } catch (error) {
    parentPort.postMessage({ _tag: "failed", id, message: String(error && error.message) })
  }
}
const close = ({ id }) => {
  const database = databases.get(id)
  if (database !== undefined) {
    databases.delete(id)
    clearInterval(database.timer)
    try { database.db.close() } catch {}
  }
  parentPort.postMessage({ _tag: "stopped", id })
}
parentPort.on("message", (message) => {
  switch (message._tag) {
    case "write": return write(message)
    case "open": return open(message)
    case "close": return close(message)
  }
})
`

/** How a body's write ended: `undefined` once it is in place, or the error that stopped it (its temp file removed). */
export type Done = (error: Error | undefined) => void

/** The most bodies sent in one message. */
const maxBatch = 256

/**
 * The better-sqlite3 that a connection of this process runs on: the module already loaded (`@effect/sql-sqlite-node`
 * has opened the database by the time it is checkpointed here), or else the one `@effect/sql-sqlite-node` would load,
 * resolved from this module's file.
 */
const driverPath = (): string => {
  const from = createRequire(import.meta.url)
  const loaded = Object.keys(from.cache).find((file) => /[/\\]better-sqlite3[/\\]lib[/\\]index\.js$/.test(file))
  return loaded ?? createRequire(from.resolve("@effect/sql-sqlite-node")).resolve("better-sqlite3")
}

type Reply =
  | { readonly _tag: "ready"; readonly id: number }
  | { readonly _tag: "failed"; readonly id: number; readonly message: string }
  | { readonly _tag: "error"; readonly id: number; readonly message: string }
  | { readonly _tag: "stopped"; readonly id: number }

// A database checkpointed by the thread: what opens it there again after the thread is replaced, and who waits.
interface Checkpointed {
  readonly open: { readonly _tag: "open"; readonly id: number; readonly driver: string } & CheckpointOptions
  readonly onError: (message: string) => void
  opened: { readonly resolve: () => void; readonly reject: (error: Error) => void } | undefined
  stopped: (() => void) | undefined
}

interface CheckpointOptions {
  readonly filename: string
  readonly intervalMs: number
}

/** @internal */
export class StorageThread {
  private worker: Worker | undefined
  // Waiting for the thread, in the order their bodies were sent; `head` is the next to finish. A finished one's slot is
  // emptied at once, so that its callback (and whatever it holds) is not kept until the array is next compacted.
  private sent: Array<Done | undefined> = []
  private head = 0
  private temps: Array<string> = []
  private finals: Array<string> = []
  private bodies: Array<Uint8Array> = []
  private queued: Array<Done> = []
  private flushing = false
  private idle: Array<() => void> = []
  private readonly observers = new Set<(count: number, nanos: number) => void>()
  private readonly databases = new Map<number, Checkpointed>()
  private nextId = 0
  private restart: ReturnType<typeof setTimeout> | undefined
  private closed = false

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

  /** `took(count, nanos)` is told of each answer: the thread wrote `count` bodies (or failed to) in `nanos`. */
  observeWrites(took: (count: number, nanos: number) => void): () => void {
    this.observers.add(took)
    return () => this.observers.delete(took)
  }

  /** Resolves once no body is pending. */
  drained(): Promise<void> {
    if (this.pending === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  /**
   * Checkpoints the SQLite database `filename` (which must exist, in WAL mode) every `intervalMs` until the returned
   * function is called; that resolves once the thread has closed its connection, so that the caller's connection,
   * closed after it, is the last and checkpoints what is left. Resolves once the thread's connection is open; rejects
   * if it cannot be opened. `onError` is told of each kind of checkpoint failure, once, and of a thread that had to be
   * replaced and could not open the database again.
   */
  checkpoints(
    options: CheckpointOptions & { readonly onError: (message: string) => void }
  ): Promise<() => Promise<void>> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error("the storage thread is closed"))
      const id = this.nextId++
      let driver: string
      try {
        driver = driverPath()
      } catch (error) {
        return reject(error)
      }
      const database: Checkpointed = {
        open: { _tag: "open", id, driver, filename: options.filename, intervalMs: options.intervalMs },
        onError: options.onError,
        opened: {
          resolve: () => resolve(() => this.stopCheckpoints(id)),
          reject: (error) => {
            this.databases.delete(id)
            reject(error)
          }
        },
        stopped: undefined
      }
      this.databases.set(id, database)
      const worker = this.worker ?? this.start()
      worker.postMessage(database.open)
    })
  }

  /** Waits until every body sent is written (or failed), then stops the thread (its databases closed first). */
  close(): Promise<void> {
    return this.drained().then(async () => {
      this.closed = true
      if (this.restart !== undefined) clearTimeout(this.restart)
      await Promise.all(Array.from(this.databases.keys(), (id) => this.stopCheckpoints(id)))
      const worker = this.worker
      this.worker = undefined
      if (worker !== undefined) await worker.terminate()
    })
  }

  private stopCheckpoints(id: number): Promise<void> {
    const database = this.databases.get(id)
    const worker = this.worker
    if (database === undefined) return Promise.resolve()
    if (worker === undefined) {
      this.databases.delete(id)
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      database.stopped = () => {
        this.databases.delete(id)
        resolve()
      }
      worker.postMessage({ _tag: "close", id })
    })
  }

  private readonly flushLater = () => {
    this.flushing = false
    this.flush()
  }

  private flush(): void {
    if (this.queued.length === 0) return
    const worker = this.worker ?? this.start()
    worker.postMessage({ _tag: "write", temps: this.temps, finals: this.finals, bodies: this.bodies })
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
    worker.on("message", (message: [number, Array<[number, string, string | undefined]>, number] | Reply) => {
      if (Array.isArray(message)) return this.answered(message[0], message[1], message[2])
      const database = this.databases.get(message.id)
      if (database === undefined) return
      switch (message._tag) {
        case "ready": {
          database.opened?.resolve()
          database.opened = undefined
          return
        }
        case "failed": {
          if (database.opened !== undefined) return database.opened.reject(new Error(message.message))
          // Opened once, by a thread since replaced: the database is no longer checkpointed here.
          this.databases.delete(message.id)
          return database.onError(`the database cannot be opened again: ${message.message}`)
        }
        case "error":
          return database.onError(message.message)
        case "stopped":
          return database.stopped?.()
      }
    })
    // The thread failed or stopped by itself: what it held fails, the next write starts another, and so do the
    // databases it checkpointed, a second later (a thread that cannot start is not started again at once).
    const lost = (error: Error) => {
      if (this.worker !== worker) return
      this.worker = undefined
      const waiting = this.sent.slice(this.head)
      this.sent = []
      this.head = 0
      for (const done of waiting) done!(error)
      for (const database of this.databases.values()) {
        database.stopped?.()
        if (database.opened !== undefined) database.opened.reject(error)
      }
      this.settled()
      if (this.databases.size > 0 && !this.closed) {
        this.restart = setTimeout(() => {
          this.restart = undefined
          if (this.closed || this.databases.size === 0) return
          const next = this.worker ?? this.start()
          for (const database of this.databases.values()) next.postMessage(database.open)
        }, 1_000)
        this.restart.unref()
      }
    }
    worker.on("error", lost)
    worker.on("exit", (code) => lost(new Error(`the storage thread stopped (exit code ${code})`)))
    this.worker = worker
    return worker
  }

  private answered(count: number, failures: Array<[number, string, string | undefined]>, millis: number): void {
    for (const took of this.observers) took(count, millis * 1e6)
    const from = this.head
    this.head += count
    let f = 0
    for (let i = 0; i < count; i++) {
      const failure = f < failures.length && failures[f][0] === i ? failures[f++] : undefined
      const done = this.sent[from + i]!
      this.sent[from + i] = undefined
      done(failure === undefined ? undefined : Object.assign(new Error(failure[1]), { code: failure[2] }))
    }
    this.settled()
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
