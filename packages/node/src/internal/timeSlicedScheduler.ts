import * as Scheduler from "effect/Scheduler"

interface Bucket {
  readonly priority: number
  tasks: Array<Scheduler.Task>
  head: number
}

/** @internal */
export class TimeSlicedScheduler implements Scheduler.Scheduler {
  // Ascending priority, as `Scheduler.PriorityBuckets` orders them; nearly always the one bucket of priority 0.
  private buckets: Array<Bucket> = []
  private queued = 0
  // A drain is pending, in a microtask or in a `setImmediate`.
  private scheduled = false
  // Milliseconds of tasks run in the current turn of the event loop; the turn ends at the `setImmediate` armed by
  // its first drain, which runs in the check phase, after the poll phase's I/O callbacks.
  private spent = 0
  private turnEndArmed = false

  constructor(
    private readonly sliceMillis: number,
    private readonly now: () => number
  ) {}

  readonly shouldYield: Scheduler.Scheduler["shouldYield"] = Scheduler.defaultShouldYield

  scheduleTask(task: Scheduler.Task, priority: number): void {
    this.bucketOf(priority).tasks.push(task)
    this.queued++
    if (this.scheduled) return
    this.scheduled = true
    if (this.spent < this.sliceMillis) queueMicrotask(this.drain)
    else setImmediate(this.drain)
  }

  private bucketOf(priority: number): Bucket {
    const buckets = this.buckets
    let index = 0
    for (; index < buckets.length; index++) {
      const bucket = buckets[index]
      if (bucket.priority === priority) return bucket
      if (bucket.priority > priority) break
    }
    const bucket: Bucket = { priority, tasks: [], head: 0 }
    buckets.splice(index, 0, bucket)
    return bucket
  }

  private readonly endTurn = () => {
    this.turnEndArmed = false
    this.spent = 0
  }

  private readonly drain = () => {
    if (!this.turnEndArmed) {
      this.turnEndArmed = true
      setImmediate(this.endTurn)
    }
    const started = this.now()
    try {
      while (this.queued > 0) {
        this.runNext()
        if (this.queued > 0 && this.now() - started + this.spent >= this.sliceMillis) break
      }
    } finally {
      this.spent += this.now() - started
      if (this.queued > 0) setImmediate(this.drain)
      else this.scheduled = false
    }
  }

  // Runs the oldest task of the most urgent bucket that has one.
  private runNext(): void {
    const buckets = this.buckets
    for (let index = 0; index < buckets.length; index++) {
      const bucket = buckets[index]
      if (bucket.head === bucket.tasks.length) continue
      const task = bucket.tasks[bucket.head]
      bucket.tasks[bucket.head] = undefined as never
      bucket.head++
      this.queued--
      if (bucket.head === bucket.tasks.length) {
        bucket.tasks = []
        bucket.head = 0
      } else if (bucket.head >= 1024 && bucket.head * 2 >= bucket.tasks.length) {
        bucket.tasks = bucket.tasks.slice(bucket.head)
        bucket.head = 0
      }
      task()
      return
    }
  }
}
