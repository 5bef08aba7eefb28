import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { LinkedList, type Node } from "./linkedList.js"

/** @internal */
export interface Entry {
  readonly deadline: number
  readonly expire: () => void
}

/**
 * Deadlines of the waiters of one limit (or of every key of a keyed one), kept in deadline order, and one timer
 * fiber that calls `expire` on each waiter still registered when its deadline comes. Waiters that are served, or
 * interrupted, `cancel` their entry, so a waiter that never waits never touches it and a limit with waiters runs
 * one timer, not one per waiter. The timer fiber ends when no entry is left.
 *
 * Entries are inserted from the tail: with one `maxWait` per limit, deadlines arrive in order and an insertion is
 * O(1).
 *
 * @internal
 */
export interface Expiry {
  /** Registers `expire` for `deadline` (clock milliseconds); starts the timer fiber if it must wake earlier. */
  readonly add: (deadline: number, expire: () => void) => Effect.Effect<Node<Entry>>
  /** Forgets an entry (served or interrupted waiter); harmless when it already expired. */
  readonly cancel: (node: Node<Entry>) => void
  /** Entries registered now. */
  readonly size: () => number
}

/** @internal */
export const make = (): Expiry => {
  const entries = new LinkedList<Entry>()
  // The timer fiber that is current; an older one, superseded because an earlier deadline arrived, ends on waking.
  let generation = 0
  let running = false
  let wakeAt = Number.POSITIVE_INFINITY

  const reap = (current: number): Effect.Effect<void> =>
    Effect.clockWith((clock) =>
      Effect.suspend(() => {
        if (current !== generation) return Effect.void
        const now = clock.unsafeCurrentTimeMillis()
        let head = entries.head
        while (head !== undefined && head.value.deadline <= now) {
          entries.remove(head)
          head.value.expire()
          head = entries.head
        }
        if (head === undefined) {
          running = false
          wakeAt = Number.POSITIVE_INFINITY
          return Effect.void
        }
        wakeAt = head.value.deadline
        return Effect.flatMap(clock.sleep(Duration.millis(wakeAt - now)), () => reap(current))
      })
    )

  const insert = (entry: Entry): Node<Entry> => {
    let after = entries.tail
    while (after !== undefined && after.value.deadline > entry.deadline) after = after.prev
    return after === undefined ? entries.unshift(entry) : entries.insertAfter(after, entry)
  }

  return {
    add: (deadline, expire) =>
      Effect.suspend(() => {
        const node = insert({ deadline, expire })
        if (running && deadline >= wakeAt) return Effect.succeed(node)
        running = true
        wakeAt = deadline
        // A daemon: the waiter that started it may leave at once, the others still need their timer. It inherits
        // the waiter's Clock (TestClock in tests) and never outlives the last deadline.
        return Effect.as(Effect.forkDaemon(Effect.interruptible(reap(++generation))), node)
      }),
    cancel: (node) => {
      entries.remove(node)
    },
    size: () => entries.length
  }
}
