/**
 * The items of a work queue offered at a priority other than the default: one FIFO per priority, the levels kept
 * sorted from the highest priority down. Only levels that hold items are kept, so a queue whose offers use many
 * distinct priorities over time never holds more levels than items.
 *
 * @internal
 */

interface Level<A> {
  priority: number
  readonly items: Array<A | undefined>
  /** Index of the oldest item in `items`; the slots before it have been taken. */
  head: number
}

/** @internal */
export class PriorityLevels<A> {
  /** Non-empty levels, highest priority first. */
  private readonly levels: Array<Level<A>> = []
  /** The last level emptied, kept to be reused: items offered one at a time are often taken at once. */
  private spare: Level<A> | undefined = undefined
  /** Items in every level. */
  length = 0

  /** The highest priority that holds an item; `-Infinity` when there is none. */
  top(): number {
    return this.levels.length === 0 ? Number.NEGATIVE_INFINITY : this.levels[0].priority
  }

  /** Adds `item` after the other items of its priority. */
  push(priority: number, item: A): void {
    const levels = this.levels
    // The first level whose priority is not above `priority` (binary search; the levels are few and sorted).
    let low = 0
    let high = levels.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (levels[middle].priority > priority) low = middle + 1
      else high = middle
    }
    let level = levels[low]
    if (level === undefined || level.priority !== priority) {
      level = this.spare ?? { priority, items: [], head: 0 }
      this.spare = undefined
      level.priority = priority
      levels.splice(low, 0, level)
    }
    level.items.push(item)
    this.length++
  }

  /** Removes and returns the oldest item of the highest priority. The caller checks that there is one. */
  shift(): A {
    const level = this.levels[0]
    const item = level.items[level.head] as A
    level.items[level.head] = undefined
    level.head++
    this.length--
    if (level.head === level.items.length) {
      this.levels.shift()
      level.items.length = 0
      level.head = 0
      this.spare = level
    } else if (level.head >= 1024 && level.head * 2 >= level.items.length) {
      // A level that is refilled as fast as it is taken never empties: drop its taken slots now and then.
      level.items.splice(0, level.head)
      level.head = 0
    }
    return item
  }
}
