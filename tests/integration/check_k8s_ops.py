#!/usr/bin/python3
# Checks deploy/k8s (the files its kustomization.yaml lists) for the ops
# port's fence (issue 11, "Ops HTTP that stays up"): a NetworkPolicy that
# admits 7480 only from monitoring pods, never from everywhere; the ops
# Service in-cluster only; probes on the ops port; the per-address limit
# set. Run by tests/integration/test_deploy.c: prints "ok" and exits 0, or
# prints what is wrong and exits 1. Needs python3-yaml.
import sys

import yaml

OPS = 7480
problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def load(k8s_dir):
    with open(f"{k8s_dir}/kustomization.yaml") as f:
        kust = yaml.safe_load(f)
    docs = []
    for res in kust.get("resources", []):
        with open(f"{k8s_dir}/{res}") as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return kust, docs


def port_numbers(rule, named):
    return {named.get(p.get("port"), p.get("port")) for p in rule.get("ports", [])}


def main(k8s_dir):
    kust, docs = load(k8s_dir)
    check("networkpolicy.yaml" in kust.get("resources", []),
          "kustomization.yaml does not apply networkpolicy.yaml")
    sts = [d for d in docs if d["kind"] == "StatefulSet"]
    check(len(sts) == 1, "one StatefulSet")
    pod = sts[0]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    c = pod["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(named.get("ops") == OPS, "the container port 'ops' is not 7480")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    check(env.get("FIELDSYNC_OPS_LISTEN", "").endswith(f":{OPS}"), "FIELDSYNC_OPS_LISTEN")
    check(int(env.get("FIELDSYNC_OPS_PER_IP_CONNECTIONS") or 0) >= 1,
          "FIELDSYNC_OPS_PER_IP_CONNECTIONS is not set")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        g = c.get(probe, {}).get("httpGet", {})
        check(named.get(g.get("port"), g.get("port")) == OPS, f"{probe} is not on the ops port")
    check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
          "the liveness probe is not GET /healthz")

    for svc in (d for d in docs if d["kind"] == "Service"):
        ports = {p.get("port") for p in svc["spec"].get("ports", [])}
        if OPS in ports:
            check(svc["spec"].get("type", "ClusterIP") == "ClusterIP",
                  f"Service {svc['metadata']['name']} exposes 7480 beyond the cluster")
            check(ports == {OPS}, f"Service {svc['metadata']['name']} mixes 7480 with public ports")

    pols = [d for d in docs if d["kind"] == "NetworkPolicy"
            and all(labels.get(k) == v
                    for k, v in d["spec"]["podSelector"].get("matchLabels", {}).items())]
    check(len(pols) >= 1, "no NetworkPolicy selects the fieldsyncd pods")
    ops_rules = 0
    for pol in pols:
        check("Ingress" in pol["spec"].get("policyTypes", []), "the policy does not fence ingress")
        for rule in pol["spec"].get("ingress", []):
            ports = port_numbers(rule, named)
            check(len(ports) > 0, "an ingress rule without ports admits every port, 7480 too")
            if OPS not in ports:
                continue
            ops_rules += 1
            peers = rule.get("from", [])
            check(len(peers) > 0, "7480 is admitted from everywhere")
            for peer in peers:
                ns = peer.get("namespaceSelector", {}).get("matchLabels", {})
                check("ipBlock" not in peer or peer["ipBlock"].get("cidr") not in ("0.0.0.0/0", "::/0"),
                      "7480 is admitted from 0.0.0.0/0")
                check("ipBlock" in peer or ns.get("kubernetes.io/metadata.name") == "monitoring",
                      "7480 is admitted from outside the monitoring namespace")
                check("ipBlock" in peer or peer.get("podSelector", {}).get("matchLabels"),
                      "7480 is admitted from every pod of the monitoring namespace")
            check(ports == {OPS}, "the rule for 7480 also admits other ports")
    check(ops_rules >= 1, "no rule admits 7480 (Prometheus cannot scrape)")

    if problems:
        print("\n".join(problems))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
