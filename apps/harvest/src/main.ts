/**
 * Harvest server entry point. The service itself is specified in DESIGN.md and built in issue 6; until then this
 * entry point says so plainly instead of pretending to serve.
 */
console.log("Harvest is not built yet: the server lands with the Harvest issue. See README.md for what works today.")
