/**
 * Runs the Connect emulator as its own process, so a test that blocks its
 * event loop (spawnSync of kubectl, ssh) cannot stall ESO's calls to it.
 * Reads `{"token", "port", "key", "expires", "extraItems"?, "rawItems"?, "tokens"?, "otherVaults"?}`
 * as JSON on stdin (never argv), seeds vault `blumeops` (and any others), prints `listening <url>` and serves
 * until killed. Tests rotate the key through the Connect API itself (PUT).
 */
import { apiCredential, ConnectEmulator, seedBlumeops, type TokenScope } from "./connect-emulator";

interface Seed {
    token: string;
    port?: number;
    key: string;
    expires: string;
    /** Each with its own expiry (ISO 8601). */
    extraItems?: { title: string; username: string; credential: string; expires: string }[];
    /** Items as Connect stores them (title, category, sections, fields), for shapes apiCredential does not make. */
    rawItems?: Parameters<ConnectEmulator["addItem"]>[1][];
    /** ConnectEmulator.holdFile. */
    holdFile?: string;
    /** ConnectEmulator.requestLog. */
    requestLog?: string;
    /** More tokens, each reaching only its vaults (ConnectEmulator.grant). */
    tokens?: ({ token: string } & TokenScope)[];
    /** Vaults beside blumeops, each with API Credential items (title, credential). */
    otherVaults?: { name: string; items: { title: string; credential: string }[] }[];
}

async function main(): Promise<void> {
    let input = "";
    for await (const chunk of process.stdin) {
        input += String(chunk);
    }
    const seed = JSON.parse(input) as Seed;
    const emulator = new ConnectEmulator(seed.token);
    emulator.holdFile = seed.holdFile;
    emulator.requestLog = seed.requestLog;
    const url = await emulator.listen(seed.port ?? 0);
    const { vault } = seedBlumeops(emulator, seed.key, new Date(seed.expires));
    for (const raw of seed.rawItems ?? []) {
        emulator.addItem(vault.id, raw);
    }
    for (const extra of seed.extraItems ?? []) {
        emulator.addItem(vault.id, apiCredential(extra.title, extra.username, extra.credential, new Date(extra.expires)));
    }
    for (const { token, ...scope } of seed.tokens ?? []) {
        emulator.grant(token, scope);
    }
    for (const other of seed.otherVaults ?? []) {
        const v = emulator.addVault(other.name);
        for (const item of other.items) {
            emulator.addItem(v.id, apiCredential(item.title, "ops", item.credential, new Date(seed.expires)));
        }
    }
    process.stdout.write(`listening ${url}\n`);
    const stop = (): void => {
        void emulator.close().then(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

void main();
