// @ts-check
// Not shipped, not imported: `make lint` type-checks it with the driver (js/tsconfig.json) to
// prove that the seam stays typed. Each line under an `@ts-expect-error` must stay a type
// error (a directive that expects none is an error itself): a question the core does not
// have, a wrong argument, a number that is no named answer.
/** @import { Core } from "./core" */
/** @import { Driver } from "./driver.js" */

/** @param {Core} core @param {Driver} driver */
export function misspelt(core, driver) {
  // @ts-expect-error: no such question
  core.beginRefrsh(undefined);
  // @ts-expect-error: the driver's core is typed too
  driver.core_.strat("https://a.example/", false, "follow");
  // @ts-expect-error: `start` takes the URL first
  core.start(false, "https://a.example/", "follow");
  // @ts-expect-error: `fail` takes a DriverError
  core.fail(9);
}
