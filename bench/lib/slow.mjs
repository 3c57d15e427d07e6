// Slow clients for bench/abuse.mjs (slow-loris): many connections that each dribble one byte
// at a time, either of a request's headers (never finished) or of a declared body. Records
// when the server closes each one. Loopback only; every socket is destroyed at `seconds`.
import { connect } from "node:net";
import { performance } from "node:perf_hooks";

/**
 * `count` connections of `kind` ("headers" | "body") to 127.0.0.1:`port` from `from`, each
 * sending one byte every `everyMs` for at most `seconds`. Resolves with
 * { kind, count, opened, closedByServer: [seconds open], openAtEnd, answers: {status: n} }.
 */
export function slowClients({ port, kind, count, seconds, everyMs = 1000, from = "127.0.0.77" }) {
  const head = kind === "headers"
    ? `GET /api/me HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `
    : `POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"username":"`;
  const res = { kind, count, opened: 0, refused: 0, closedByServer: [], openAtEnd: 0, answers: {} };
  return new Promise((resolve) => {
    let left = count;
    const done = () => { if (--left === 0) resolve(res); };
    for (let i = 0; i < count; i++) {
      const s = connect({ host: "127.0.0.1", port, localAddress: from });
      let opened = 0, ended = false, timer, stop;
      const finish = (how) => {
        if (ended) return;
        ended = true;
        clearInterval(timer);
        clearTimeout(stop);
        if (how === "server") res.closedByServer.push((performance.now() - opened) / 1000);
        else if (how === "end") res.openAtEnd++;
        else res.refused++;
        s.destroy();
        done();
      };
      s.setNoDelay(true);
      s.on("connect", () => {
        res.opened++;
        opened = performance.now();
        s.write(head);
        timer = setInterval(() => s.write("a"), everyMs);
        stop = setTimeout(() => finish("end"), seconds * 1000);
      });
      s.on("data", (d) => {
        const m = /^HTTP\/1\.1 (\d{3})/.exec(d.toString("latin1"));
        if (m) res.answers[m[1]] = (res.answers[m[1]] ?? 0) + 1;
      });
      s.on("error", () => finish(opened ? "server" : "refused"));
      s.on("close", () => finish(opened ? "server" : "refused"));
    }
  });
}
