// Makes Pyroscope query API calls with the real Connect client
// (@connectrpc/connect-node: what Grafana's Pyroscope data source backend
// speaks) using descriptors built from proto/querier/v1/querier.proto, once
// with the binary codec and once with the JSON codec, and prints every
// response (or Connect error) as JSON for the Python tests to check.
//   node client.mjs <descriptor-set.pb> <base-url> <calls.json>
// calls.json: [{"method": "SelectMergeStacktraces", "request": {<proto3 JSON>}}, ...]
// Output: {"proto": [result, ...], "json": [result, ...]}, result is
// {"response": <proto3 JSON>} or {"error": {"code": N, "message": "..."}}.
import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary, fromJson, toJson } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

const [descPath, baseUrl, callsPath] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descPath)));
const service = registry.getService("querier.v1.QuerierService");
const calls = JSON.parse(readFileSync(callsPath, "utf8"));
const lower = (s) => s[0].toLowerCase() + s.slice(1);
const out = {};
for (const binary of [true, false]) {
  const transport = createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: binary });
  const client = createClient(service, transport);
  const results = [];
  for (const call of calls) {
    const method = service.methods.find((m) => m.name === call.method);
    try {
      const req = fromJson(method.input, call.request, { registry });
      const res = await client[lower(call.method)](req);
      results.push({ response: toJson(method.output, res, { registry }) });
    } catch (e) {
      const ce = ConnectError.from(e);
      results.push({ error: { code: ce.code, message: ce.rawMessage } });
    }
  }
  out[binary ? "proto" : "json"] = results;
}
console.log(JSON.stringify(out));
