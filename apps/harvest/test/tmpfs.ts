/**
 * A small file system of its own for a test, to fill up for real: a `tmpfs` mounted on a temporary directory, grown
 * (`mount -o remount,size=…`) when the test gives space back, and unmounted with the scope.
 *
 * Mounting needs root (or CAP_SYS_ADMIN). Where it is not permitted the suites using it are skipped with a printed
 * reason, like the database suites (`@spindle/testkit/Databases`), except under `CI=true`, where it fails the run at
 * import: a CI run must exercise them.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const ci = Effect.runSync(Config.boolean("CI").pipe(Config.withDefault(false)))

const run = (command: string, args: ReadonlyArray<string>) =>
  execFileSync(command, args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" })

const firstLine = (error: unknown) => {
  const stderr = (error as { readonly stderr?: unknown }).stderr
  const text = typeof stderr === "string" && stderr.trim() !== "" ? stderr : String(error)
  return text.trim().split("\n")[0]
}

// Whether this process may mount a tmpfs: tried once, at import, on a directory of its own.
const probe = (): string | undefined => {
  if (process.platform !== "linux") return `tmpfs mounts need Linux (this is ${process.platform})`
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-tmpfs-probe-"))
  try {
    run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir])
  } catch (error) {
    return `cannot mount a tmpfs here (${firstLine(error)}); run as root to exercise a full disk`
  } finally {
    try {
      run("umount", [dir])
    } catch {
      // was not mounted
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return undefined
}

const reason = probe()
if (reason !== undefined) {
  if (ci) throw new Error(`a tmpfs mount is required in CI: ${reason}`)
  console.warn(`[harvest] skipping the full-disk suites: ${reason}`)
}

/** Why tmpfs suites cannot run here, if they cannot. */
export const skip: string | undefined = reason

/** A mounted tmpfs. */
export interface Tmpfs {
  readonly dir: string
  /** Changes its size (`"64m"`): more space, at once, for the files already there too. */
  readonly resize: (size: string) => Effect.Effect<void>
}

/**
 * A tmpfs of `size` (`"3m"`) mounted on a fresh temporary directory; unmounted (lazily, if something still holds a
 * file in it) and removed with the scope.
 */
export const mount = (size: string): Effect.Effect<Tmpfs, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-tmpfs-"))
      run("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir])
      return dir
    }),
    (dir) =>
      Effect.sync(() => {
        try {
          run("umount", [dir])
        } catch {
          run("umount", ["-l", dir])
        }
        fs.rmSync(dir, { recursive: true, force: true })
      })
  ).pipe(
    Effect.map((dir): Tmpfs => ({
      dir,
      resize: (to) => Effect.sync(() => void run("mount", ["-o", `remount,size=${to}`, dir]))
    }))
  )
