// Kubernetes objects (a JSON array on stdin) validated against the schemas of the kubernetes-models packages,
// custom resources included; prints a JSON list of the failures. A kind no package knows is a failure too.
const CUSTOM = {
  "argoproj.io/v1alpha1": ["@kubernetes-models/argo-rollouts", "@kubernetes-models/argo-cd"],
  "gateway.networking.k8s.io/v1": ["@kubernetes-models/gateway-api"],
  "keda.sh/v1alpha1": ["@kubernetes-models/keda"],
  "monitoring.coreos.com/v1": ["@kubernetes-models/prometheus-operator"],
  "policies.kyverno.io/v1": ["@kubernetes-models/kyverno"],
};

async function modelOf(apiVersion, kind) {
  for (const pkg of CUSTOM[apiVersion] ?? ["kubernetes-models"]) {
    try {
      const module = await import(`${pkg}/${apiVersion}`);
      if (module[kind]) return module[kind];
    } catch {
      // not this package
    }
  }
  return null;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const failures = [];
for (const object of JSON.parse(Buffer.concat(chunks).toString())) {
  const where = `${object.kind}/${object.metadata?.name}`;
  const Model = await modelOf(object.apiVersion, object.kind);
  if (!Model) {
    failures.push({ object: where, error: `no schema for ${object.apiVersion} ${object.kind}` });
    continue;
  }
  try {
    new Model(object).validate();
  } catch (error) {
    failures.push({ object: where, error: String(error.message).slice(0, 2000) });
  }
}
process.stdout.write(JSON.stringify(failures));
