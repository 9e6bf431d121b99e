/**
 * A local stand-in for the Hugging Face hub: a `node:http` server on 127.0.0.1 that answers
 * `GET`/`HEAD /<owner>/<name>/resolve/<revision>/<file>` from local folders, 404 for anything else.
 * Tests point `endpoint` (or `HF_ENDPOINT`) at `server.url`, read `server.requests` to see what was
 * downloaded, and set `server.fail` to answer some files with another status.
 */
import { readFile, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

export interface HubServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `METHOD /path` of every request so far. */
  requests: string[];
  /** Answer a request whose path ends with the key (e.g. "config.json") with this status. */
  fail: Map<string, number>;
  /** Send the body of files ending with a key in chunks, waiting this many ms between them. */
  slow: Map<string, number>;
  close(): Promise<void>;
}

/**
 * Serve `repos`: `{ "owner/name": { main: folder, v1: otherFolder } }` (revision → folder).
 */
export async function startHubServer(repos: Record<string, Record<string, string>>): Promise<HubServer> {
  const requests: string[] = [];
  const fail = new Map<string, number>();
  const slow = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    // as the hub: readable from any origin (a browser page, cross-origin isolated or not)
    res.setHeader("access-control-allow-origin", "*");
    res.setHeader("access-control-expose-headers", "content-length");
    void (async () => {
      const path = decodeURI((req.url ?? "/").split("?")[0]);
      requests.push(`${req.method} ${path}`);
      for (const [end, status] of fail) {
        if (path.endsWith(end)) {
          res.writeHead(status).end(`error ${status}`);
          return;
        }
      }
      const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
      const folder = m ? repos[m[1]]?.[decodeURIComponent(m[2])] : undefined;
      if (!m || !folder || m[3].split("/").includes("..")) {
        res.writeHead(404).end("not found");
        return;
      }
      const file = join(folder, ...m[3].split("/").map(decodeURIComponent));
      if (
        !(await stat(file).then(
          (s) => s.isFile(),
          () => false,
        ))
      ) {
        res.writeHead(404).end("not found");
        return;
      }
      const body = await readFile(file);
      res.writeHead(200, { "content-length": body.length, "content-type": "application/octet-stream" });
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      const delay = [...slow].find(([end]) => path.endsWith(end))?.[1];
      if (delay === undefined) {
        res.end(body);
        return;
      }
      const step = Math.max(1, Math.ceil(body.length / 8));
      for (let at = 0; at < body.length && !res.destroyed; at += step) {
        res.write(body.subarray(at, at + step));
        await new Promise((r) => setTimeout(r, delay));
      }
      res.end();
    })().catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    fail,
    slow,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
