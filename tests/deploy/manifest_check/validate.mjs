// Validates Kubernetes manifests against the Kubernetes API's JSON schemas
// (the kubernetes-models package: one model class per apiVersion/kind with
// validate()). Prints one line per document, "ok <kind>/<name>" or
// "FAIL <kind>/<name>: <errors>", and exits 1 when any document fails or has
// a kind it does not know.
//   node validate.mjs FILE.yaml...
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`FAIL ${file}: YAML ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    const what = `${obj.kind}/${obj.metadata?.name}`;
    const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
    let mod;
    try {
      mod = await import(`kubernetes-models/${group ? group + "/" : ""}${version}`);
    } catch (e) {
      console.log(`FAIL ${what}: unknown apiVersion ${obj.apiVersion}`);
      failed++;
      continue;
    }
    const Model = mod[obj.kind];
    if (!Model) {
      console.log(`FAIL ${what}: unknown kind ${obj.kind} in ${obj.apiVersion}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok ${what}`);
    } catch (e) {
      console.log(`FAIL ${what}: ${e.message.replace(/\n/g, " ")}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
