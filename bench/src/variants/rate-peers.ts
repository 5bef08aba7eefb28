/**
 * Rate accuracy of the promise libraries at `rate` per second with a burst of `burst`: `waiters` tasks submitted
 * at once, each recording when it starts; the window is `duration` ms of granting once all are queued (see
 * `makeRecorder`).
 *
 *   --variant=bottleneck-mintime    `new Bottleneck({ minTime: 1000 / rate })`: one start every 5 ms, no burst
 *   --variant=bottleneck-reservoir  `reservoir: burst`, `reservoirIncreaseAmount: 1` every `1000 / rate` ms,
 *                                   up to `reservoirIncreaseMaximum: burst`, with `heartbeatInterval: 1000 / rate`
 *   --variant=p-queue               `new PQueue({ intervalCap: burst, interval: burst * 1000 / rate })`: 10 per 50 ms
 */
import Bottleneck from "bottleneck"
import * as os from "node:os"
import PQueue from "p-queue"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"
import { analyse, makeRecorder } from "../lib/rate.js"

const variant = choiceArg("variant", ["bottleneck-mintime", "bottleneck-reservoir", "p-queue"])
const waiters = numberArg("waiters", 2_000)
const durationMillis = numberArg("duration", 10_000)
const rate = numberArg("rate", 200)
const burst = numberArg("burst", 10)

runVariant(async () => {
  const recorder = makeRecorder(waiters, durationMillis)
  const task = async (): Promise<void> => recorder.record()
  if (variant === "p-queue") {
    const queue = new PQueue({ intervalCap: burst, interval: (burst * 1000) / rate })
    for (let i = 0; i < waiters; i++) {
      // `add` queues synchronously.
      void queue.add(task)
      recorder.queued()
    }
  } else {
    // `heartbeatInterval` (default 250 ms) is how often Bottleneck checks the reservoir; it is a store option that
    // its typings omit.
    const reservoir: Bottleneck.ConstructorOptions & { readonly heartbeatInterval: number } = {
      reservoir: burst,
      reservoirIncreaseAmount: 1,
      reservoirIncreaseInterval: 1000 / rate,
      reservoirIncreaseMaximum: burst,
      heartbeatInterval: 1000 / rate
    }
    const limiter = new Bottleneck(variant === "bottleneck-mintime" ? { minTime: 1000 / rate } : reservoir)
    // Bottleneck queues a job asynchronously after `schedule`; its "queued" event says when.
    limiter.on("queued", () => recorder.queued())
    for (let i = 0; i < waiters; i++) void limiter.schedule(task)
  }
  await recorder.done
  return {
    waiters,
    ...analyse(recorder.times(), recorder.origin, recorder.queuedAt(), {
      ratePerSecond: rate,
      burst,
      toleranceMillis: 1
    }),
    clockDriftPpm: recorder.clockDriftPpm(),
    // How busy the machine was (other work shares it): the 1-minute load average when the window closed.
    loadAverage: os.loadavg()[0]
  }
})
