/**
 * `pnpm start`: Harvest configured from the environment, until SIGTERM/SIGINT. A start-up fault (a bad value, a
 * `DATA_DIR` it cannot write, a database it cannot reach, a port in use) ends it with one line on stderr, exit 2. V8's
 * old generation grows by at most a factor of 2 between full collections (`Startup.limitHeapGrowth`).
 */
import * as HarvestConfig from "./HarvestConfig.js"
import * as Server from "./Server.js"
import * as Startup from "./Startup.js"

Startup.limitHeapGrowth()
Startup.runLayer(Server.make(HarvestConfig.layerOverriding({})))
