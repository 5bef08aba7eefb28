/**
 * An intrusive doubly linked list: O(1) append, O(1) removal of any node (an interrupted waiter leaves the
 * queue without a scan), FIFO order.
 *
 * @internal
 */

/** @internal */
export interface Node<A> {
  readonly value: A
  prev: Node<A> | undefined
  next: Node<A> | undefined
  linked: boolean
}

/** @internal */
export class LinkedList<A> {
  head: Node<A> | undefined = undefined
  tail: Node<A> | undefined = undefined
  length = 0

  push(value: A): Node<A> {
    const node: Node<A> = { value, prev: this.tail, next: undefined, linked: true }
    if (this.tail === undefined) this.head = node
    else this.tail.next = node
    this.tail = node
    this.length++
    return node
  }

  unshift(value: A): Node<A> {
    const node: Node<A> = { value, prev: undefined, next: this.head, linked: true }
    if (this.head === undefined) this.tail = node
    else this.head.prev = node
    this.head = node
    this.length++
    return node
  }

  insertAfter(after: Node<A>, value: A): Node<A> {
    if (after === this.tail) return this.push(value)
    const node: Node<A> = { value, prev: after, next: after.next, linked: true }
    after.next!.prev = node
    after.next = node
    this.length++
    return node
  }

  shift(): Node<A> | undefined {
    const node = this.head
    if (node !== undefined) this.remove(node)
    return node
  }

  remove(node: Node<A>): boolean {
    if (!node.linked) return false
    if (node.prev === undefined) this.head = node.next
    else node.prev.next = node.next
    if (node.next === undefined) this.tail = node.prev
    else node.next.prev = node.prev
    node.prev = undefined
    node.next = undefined
    node.linked = false
    this.length--
    return true
  }
}
