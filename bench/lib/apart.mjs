// Runs an attacker of bench/abuse.mjs in a process of its own, in the lowest CPU class
// (SCHED_IDLE, by `chrt --idle 0`; `nice -n 19` where chrt is missing), so that it measures the
// server under attack and not the measuring process: worker threads of that process shared its
// heap's collector and V8's platform threads, and a nice-19 thread still held a core for a
// scheduler slice (milliseconds) before a woken server or user thread got it back. A real
// attacker does not run on the server's cores; an idle-class one takes only what they leave.
// The child is bench/lib/attacker.mjs; they talk over the IPC channel:
//   parent → {role, options}; child → {ready}; parent → "go";
//   child → {final: false, ...counts} every half second (floods), then {final: true, ...result}.
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ENTRY = fileURLToPath(new URL("./attacker.mjs", import.meta.url));
const IDLE = (() => {
  try { execFileSync("chrt", ["--idle", "0", "true"]); return true; } catch { return false; }
})();
/** How the attacker processes are scheduled (for the report). */
export const ATTACKER_CLASS = IDLE ? "SCHED_IDLE" : "nice 19";

/**
 * Starts `role` ("flood" | "slow", see attacker.mjs) with `options` and resolves once it is ready
 * to send (its modules loaded, its pools made, its crypto warm), with `go(stuckAfterMs)`: starts
 * it and resolves with its result. A child that has not ended `stuckAfterMs` after `go` is
 * killed and its latest report counts (none if it never reported), marked `stuck: 1`.
 */
export function apart(role, options) {
  const [cmd, args] = IDLE ? ["chrt", ["--idle", "0", process.execPath, ENTRY]] : ["nice", ["-n", "19", process.execPath, ENTRY]];
  const child = spawn(cmd, args, { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
  let ended = false; // the final report came
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const kill = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`attacker ${role} did not get ready`)); }, 30_000);
    child.once("error", (e) => { clearTimeout(kill); reject(e); });
    exited.then(({ code, signal }) => { clearTimeout(kill); reject(new Error(`attacker ${role} exited before it was ready (${code ?? signal})`)); });
    child.once("message", () => { clearTimeout(kill); resolve(); });
  });
  child.send({ role, options });
  const go = (stuckAfterMs) => new Promise((resolve, reject) => {
    let latest = null;
    const kill = setTimeout(() => {
      console.error(`attacker ${role} did not stop in time: killed, its counts up to its latest report`);
      child.kill("SIGKILL");
      // (One that never reported counts nothing: the row says that a process was stuck.)
      resolve({ ...(latest ?? { sent: 0, seconds: 0, status: {}, retryAfter: [] }), stuck: 1 });
    }, stuckAfterMs);
    child.on("message", (m) => {
      if (!m.final) return void (latest = m);
      ended = true;
      clearTimeout(kill);
      child.disconnect();
      resolve(m);
    });
    exited.then(({ code, signal }) => {
      if (ended) return;
      clearTimeout(kill);
      if (signal !== "SIGKILL") reject(new Error(`attacker ${role} exited without a result (${code ?? signal})`));
    });
    child.send("go");
  });
  return ready.then(() => ({ go }));
}
