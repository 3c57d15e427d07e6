// The attacker process that bench/lib/apart.mjs starts: runs one flood thread's loop
// (flood.mjs) or a batch of slow clients (slow.mjs), and reports over the IPC channel.
import { floodLoop } from "./flood.mjs";
import { slowClients } from "./slow.mjs";

const { role, options } = await new Promise((resolve) => process.once("message", resolve));
const started = () => new Promise((go) => { process.send({ ready: true }); process.once("message", go); });
const report = (m) => process.send(m);
let result;
if (role === "flood") result = await floodLoop(options, { started, report });
else {
  await started();
  result = await slowClients(options);
}
process.send({ ...result, final: true }, () => process.exit(0));
