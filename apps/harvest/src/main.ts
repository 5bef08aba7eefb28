/**
 * `pnpm start`: Harvest configured from the environment, until SIGTERM/SIGINT.
 */
import { Shutdown } from "@spindle/node"
import * as HarvestConfig from "./HarvestConfig.js"
import * as Server from "./Server.js"

Shutdown.runLayer(Server.make(HarvestConfig.layer), { deadline: "60 seconds" })
