#!/usr/bin/env python3
"""Render a kustomization the way `kubectl kustomize` does, for the subset armlet uses.

Why our own: kustomize is a Go binary that no package registry this project uses ships, and
`kubectl kustomize` needs kubectl. This renderer implements exactly the fields the k3s/
kustomizations use -- `resources` (files and directories holding a kustomization.yaml),
`namespace`, `labels` (`pairs`, `includeSelectors`), `images` (`name`, `newName`, `newTag`)
and `patches` (strategic-merge patches given as `path`, merged by name) -- and refuses any
other field, so it can never silently ignore something kustomize would apply.

usage: render.py DIR  -> the rendered multi-document YAML on stdout; exit 1 with FILE: reason
"""
import copy
import os
import sys

import yaml

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                  "CustomResourceDefinition", "StorageClass", "PersistentVolume"}
KNOWN = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}
POD_TEMPLATE_KINDS = {"DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job"}


class RenderError(Exception):
    pass


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def merge(base, patch):
    """Strategic merge for maps and for lists of maps keyed by `name`."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list)
            and all(isinstance(x, dict) and "name" in x for x in base + patch)):
        out = [copy.deepcopy(x) for x in base]
        for p in patch:
            for i, b in enumerate(out):
                if b["name"] == p["name"]:
                    out[i] = merge(b, p)
                    break
            else:
                out.append(copy.deepcopy(p))
        return out
    return copy.deepcopy(patch)


def containers(doc):
    spec = doc.get("spec", {})
    if doc.get("kind") in POD_TEMPLATE_KINDS:
        spec = spec.get("template", {}).get("spec", {})
    elif doc.get("kind") != "Pod":
        return []
    return spec.get("containers", []) + spec.get("initContainers", [])


def render(directory):
    kpath = os.path.join(directory, "kustomization.yaml")
    if not os.path.isfile(kpath):
        raise RenderError(f"{directory}: no kustomization.yaml")
    k = yaml.safe_load(open(kpath, encoding="utf-8")) or {}
    unknown = set(k) - KNOWN
    if unknown:
        raise RenderError(f"{kpath}: fields this renderer does not implement: {sorted(unknown)}")
    if k.get("kind") != "Kustomization":
        raise RenderError(f"{kpath}: kind must be Kustomization")
    docs = []
    for r in k.get("resources", []):
        p = os.path.join(directory, r)
        if os.path.isdir(p):
            docs.extend(render(p))
        elif os.path.isfile(p):
            docs.extend(load_docs(p))
        else:
            raise RenderError(f"{kpath}: resource {r} does not exist")
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{kpath}: only `patches: - path: FILE` is implemented")
        for p in load_docs(os.path.join(directory, patch["path"])):
            key = (p.get("kind"), p.get("metadata", {}).get("name"))
            hits = [i for i, d in enumerate(docs)
                    if (d.get("kind"), d.get("metadata", {}).get("name")) == key]
            if len(hits) != 1:
                raise RenderError(f"{kpath}: patch {patch['path']} matches {len(hits)} resources")
            docs[hits[0]] = merge(docs[hits[0]], p)
    ns = k.get("namespace")
    for d in docs:
        meta = d.setdefault("metadata", {})
        if ns and d.get("kind") not in CLUSTER_SCOPED:
            meta["namespace"] = ns
        if ns and d.get("kind") == "ClusterRoleBinding":
            for s in d.get("subjects", []):
                if s.get("kind") == "ServiceAccount":
                    s["namespace"] = ns
        for entry in k.get("labels", []):
            pairs = entry.get("pairs", {})
            meta.setdefault("labels", {}).update(pairs)
            if d.get("kind") in POD_TEMPLATE_KINDS:
                tmeta = d["spec"]["template"].setdefault("metadata", {})
                tmeta.setdefault("labels", {}).update(pairs)
                if entry.get("includeSelectors", False):
                    d["spec"]["selector"].setdefault("matchLabels", {}).update(pairs)
        for img in k.get("images", []):
            for c in containers(d):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}"
    return docs


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        docs = render(sys.argv[1])
    except (RenderError, OSError, yaml.YAMLError) as e:
        print(f"render: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
