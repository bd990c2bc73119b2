// Calls stackstream's Pyroscope query API with the real Connect client
// (@connectrpc/connect-node, what Grafana's Pyroscope backend speaks) using
// descriptors from proto/querier/v1/querier.proto, and prints the results
// as JSON for test_connect_client.py to check.
//   node client.mjs <descriptor-set.pb> <base-url> <now-ms>
import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

const [descPath, baseUrl, nowArg] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descPath)));
const service = registry.getService("querier.v1.QuerierService");
const out = {};
for (const binary of [true, false]) {
  const transport = createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: binary });
  const client = createClient(service, transport);
  const now = BigInt(nowArg);
  const start = now - 30n * 60n * 1000n;
  const tag = binary ? "proto" : "json";
  const res = {};
  const msg = (name, m) => toJson(registry.getMessage("querier.v1." + name), m);
  res.profileTypes = msg("ProfileTypesResponse", await client.profileTypes({ start, end: now }));
  res.labelNames = msg("LabelNamesResponse",
    await client.labelNames({ matchers: ['{service_name="api"}'], start, end: now }));
  res.labelValues = msg("LabelValuesResponse",
    await client.labelValues({ name: "service_name", start, end: now }));
  res.merge = msg("SelectMergeStacktracesResponse", await client.selectMergeStacktraces({
    profileTypeID: "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
    labelSelector: '{service_name="api", env="prod"}', start, end: now, maxNodes: 1024n }));
  res.series = msg("SelectSeriesResponse", await client.selectSeries({
    profileTypeID: "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
    labelSelector: '{service_name="api"}', start, end: now, groupBy: ["env"], step: 60 }));
  try {
    await client.selectMergeStacktraces({ profileTypeID: "nope", labelSelector: "{" });
    res.error = "no error";
  } catch (e) {
    const ce = ConnectError.from(e);
    res.error = { code: ce.code, message: ce.rawMessage };
  }
  out[tag] = res;
}
console.log(JSON.stringify(out));
