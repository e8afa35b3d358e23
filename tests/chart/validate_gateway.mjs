// Validate Gateway API objects (a JSON array on stdin) with @kubernetes-models/gateway-api, whose validators are
// generated from the Gateway API CRDs. Exit 1 listing every invalid object. Run from the folder holding node_modules.
import { pathToFileURL } from "node:url";
import path from "node:path";

const root = path.join(process.cwd(), "node_modules", "@kubernetes-models", "gateway-api");
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = 0;
for (const doc of JSON.parse(input)) {
  const [group, version] = doc.apiVersion.split("/");
  const module = await import(pathToFileURL(path.join(root, group, version, `${doc.kind}.js`)).href);
  try {
    new module[doc.kind](doc).validate();
  } catch (err) {
    failed += 1;
    console.log(`${doc.kind}/${doc.metadata?.name}: ${err.message}`);
  }
}
process.exit(failed ? 1 : 0);
