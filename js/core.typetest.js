// @ts-check
// Not shipped, not imported: `make lint` type-checks it with the driver (js/tsconfig.json) to
// prove that the seam stays typed. Each line under an `@ts-expect-error` must stay a type
// error (a directive that expects none is an error itself): a question the core does not
// have, a wrong argument, a number that is no named answer.
/** @import { Ask } from "./core" */
/** @import { AuthClient } from "./driver.js" */
import { Question } from "./driver.js";

/** @param {Ask} ask @param {AuthClient} driver */
export function misspelt(ask, driver) {
  // @ts-expect-error: no such question
  ask(Question.BeginRefrsh, undefined);
  // @ts-expect-error: a number that is no question
  ask(99);
  // @ts-expect-error: `start` takes the URL first
  ask(Question.Start, false, "https://a.example/", "follow");
  // @ts-expect-error: `On401` answers an On401, never `Start.Strict`
  /** @type {4} */ const strict = ask(Question.On401, "a", "u", "u", false, false, null, 0);
  // @ts-expect-error: the driver's handle on the core is typed too
  driver.ask_(Question.Start, 5, false, "follow");
  // And a correct question type-checks, its answer typed.
  /** @type {string | undefined} */
  const token = driver.ask_(Question.Access);
  return [token, strict];
}
