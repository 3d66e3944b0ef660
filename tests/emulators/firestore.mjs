// Starts @firestore-emulator/server on 127.0.0.1:<port> (argv[2], 0 = any free port) and prints
// "ready <port>" once it listens. Used by the pytest fixture in tests/emulators.py.
import { FirestoreServer } from "@firestore-emulator/server";
import net from "node:net";

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const wanted = Number(process.argv[2] || 0);
const port = wanted || (await freePort());
const server = new FirestoreServer();
await server.start(port);
process.stdout.write(`ready ${port}\n`);
const stop = async () => { try { await server.stop?.(); } finally { process.exit(0); } };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
