"""Objects by resource, with the API server's write semantics and a watch history.

One lock guards everything; stored dicts are never mutated after a write (a write stores
a new dict), so readers may serialise them outside the lock and cache the bytes.
"""

from __future__ import annotations

import base64
import bisect
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import defaults, errors
from .discovery import Discovery, Resource
from .json_tree import clone
from .patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    apply_merge,
    builtin_schema,
    crd_schema,
    json_patch,
    merge_patch,
    strategic_merge,
)
from .validation import ObjectValidator

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what the API server uses for generateName


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choices(_NAME_CHARS, k=n))


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Stored:
    """An object as written, with its JSON serialised once on first read."""

    __slots__ = ("obj", "_raw")

    def __init__(self, obj: dict):
        self.obj = obj
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = dumps(self.obj)
        return self._raw


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: Resource
    obj: dict
    old: dict | None = None


Admission = Callable[[Resource, dict, dict | None], None]  # mutate obj in place; raise ApiError


def _strip_volatile(obj: dict) -> dict:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items()
            if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


class Store:
    def __init__(self, discovery: Discovery, validator: ObjectValidator,
                 history: int = 20_000):
        self.discovery = discovery
        self.validator = validator
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 0
        self._data: dict[tuple[str, str], dict[tuple[str, str], Stored]] = {}
        self._sorted: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._history: list[Event] = []
        self._history_max = history
        self.compacted = 0  # events at or below this resourceVersion are forgotten
        self._owners: dict[str, set[tuple[tuple[str, str], str, str]]] = {}
        self._applied: dict[tuple[str, str, str], Any] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.admission: list[Admission] = []
        self.webhooks: Any = None  # webhooks.Dispatcher: admission webhooks, for HTTP requests
        self.crds: dict[str, dict] = {}
        # Resource key -> [(predicate, the objects it holds for, by key)]: see ``subset``.
        self._subsets: dict[tuple[str, str], list[tuple[Callable[[dict], Any],
                                                         dict[tuple[str, str], Stored]]]] = {}
        # Resource key -> [(key function, value -> the objects with that value)]: ``indexed``.
        self._indexes: dict[tuple[str, str], list[tuple[Callable[[dict], Any], dict[
            Any, dict[tuple[str, str], Stored]]]]] = {}

    # Reads ------------------------------------------------------------------------------
    def _bucket(self, res: Resource) -> dict[tuple[str, str], Stored]:
        return self._data.setdefault(res.key, {})

    def lookup(self, res: Resource, namespace: str | None, name: str) -> Stored | None:
        return self._data.get(res.key, {}).get((namespace or "" if res.namespaced else "", name))

    def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        stored = self.lookup(res, namespace, name)
        if stored is None:
            raise errors.not_found(res.group, res.plural, name)
        return stored.obj

    def namespace_exists(self, name: str) -> bool:
        return ("", name) in self._data.get(("", "namespaces"), {})

    def _keys(self, res: Resource) -> list[tuple[str, str]]:
        keys = self._sorted.get(res.key)
        if keys is None:
            keys = self._sorted[res.key] = sorted(self._bucket(res))
        return keys

    def list(self, res: Resource, namespace: str | None = None,
             match: Callable[[dict], bool] | None = None, limit: int = 0,
             continue_: str | None = None) -> tuple[list[Stored], int, str | None, int | None]:
        """A page of objects in key order: (items, resourceVersion, continue, remaining)."""
        with self.lock:
            keys, bucket, rv = self._keys(res), self._bucket(res), self.rv
            lo, hi = 0, len(keys)
            if namespace and res.namespaced:
                lo = bisect.bisect_left(keys, (namespace, ""))
                hi = bisect.bisect_left(keys, (namespace + "\0", ""))
            if continue_:
                try:
                    token = json.loads(base64.urlsafe_b64decode(continue_.encode()))
                    start = tuple(token["start"])
                    listed_at = int(token["rv"])
                except (ValueError, KeyError, TypeError):
                    raise errors.bad_request("continue key is not valid") from None
                if listed_at < self.compacted:
                    # The snapshot the first page came from is gone: offer the rest as of now.
                    raise errors.expired_continue(base64.urlsafe_b64encode(json.dumps(
                        {"rv": rv, "start": list(start)}).encode()).decode())
                lo = max(lo, bisect.bisect_right(keys, start))
            items: list[Stored] = []
            i = lo
            while i < hi and (not limit or len(items) < limit):
                stored = bucket[keys[i]]
                if match is None or match(stored.obj):
                    items.append(stored)
                i += 1
            token = None
            remaining = None
            if limit and i < hi:
                last = keys[i - 1]
                token = base64.urlsafe_b64encode(
                    json.dumps({"rv": rv, "start": list(last)}).encode()).decode()
                remaining = (hi - i) if match is None else None
            return items, rv, token, remaining

    def subset(self, res: Resource, where: Callable[[dict], Any]) -> list[Stored]:
        """The objects of ``res`` for which ``where(obj)`` holds, in key order, at the cost of
        what matches: the first call scans them all, and from then on every write keeps
        the set current (the way an informer's indexer is kept). ``where`` must be a pure
        function of the object and the same function object on every call (a module-level
        function, not a lambda made per call: each new one is a new set kept forever).
        What lets a controller read the few pods it acts on among 100,000 on each pass."""
        with self.lock:
            held = next((found for fn, found in self._subsets.get(res.key, ())
                         if fn is where), None)
            if held is None:
                held = {k: s for k, s in self._bucket(res).items() if where(s.obj)}
                self._subsets.setdefault(res.key, []).append((where, held))
            return [held[k] for k in sorted(held)]

    def indexed(self, res: Resource, by: Callable[[dict], Any], value: Any) -> list[Stored]:
        """The objects of ``res`` whose ``by(obj)`` is ``value``, in key order, from an index
        kept like ``subset``'s sets (``by`` under the same rule as ``where``): a kubelet's
        "pods on my node" without reading every pod."""
        with self.lock:
            index = next((found for fn, found in self._indexes.get(res.key, ()) if fn is by),
                         None)
            if index is None:
                index = {}
                for k, s in self._bucket(res).items():
                    index.setdefault(by(s.obj), {})[k] = s
                self._indexes.setdefault(res.key, []).append((by, index))
            held = index.get(value) or {}
            return [held[k] for k in sorted(held)]

    def _keep_subsets(self, res: Resource, key: tuple[str, str], stored: Stored | None,
                      old: dict | None = None) -> None:
        for where, held in self._subsets.get(res.key, ()):
            if stored is not None and where(stored.obj):
                held[key] = stored
            else:
                held.pop(key, None)
        for by, index in self._indexes.get(res.key, ()):
            if old is not None:
                index.get(by(old), {}).pop(key, None)
            if stored is not None:
                index.setdefault(by(stored.obj), {})[key] = stored

    # Writes -----------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _emit(self, type_: str, res: Resource, obj: dict, old: dict | None) -> None:
        event = Event(self.rv, type_, res, obj, old)
        self._history.append(event)
        if len(self._history) > self._history_max:
            drop = len(self._history) - self._history_max // 2
            self.compacted = self._history[drop - 1].rv
            del self._history[:drop]
        for listener in self.listeners:
            listener(event)
        self.changed.notify_all()

    def events_since(self, rv: int) -> list[Event]:
        i = bisect.bisect_right(self._history, rv, key=lambda e: e.rv)
        return self._history[i:]

    def _put(self, res: Resource, obj: dict, old: dict | None) -> dict:
        meta = obj["metadata"]
        key = (meta.get("namespace", "") if res.namespaced else "", meta["name"])
        bucket = self._bucket(res)
        if key not in bucket:
            self._sorted.pop(res.key, None)
        previous = bucket.get(key)
        bucket[key] = stored = Stored(obj)
        self._keep_subsets(res, key, stored, previous.obj if previous else None)
        self._index_owners(res, old, remove=True)
        self._index_owners(res, obj)
        self._emit("MODIFIED" if old else "ADDED", res, obj, old)
        return obj

    def _index_owners(self, res: Resource, obj: dict | None, remove: bool = False) -> None:
        if not obj:
            return
        meta = obj["metadata"]
        entry = (res.key, meta.get("namespace", ""), meta["name"])
        for ref in meta.get("ownerReferences") or []:
            deps = self._owners.setdefault(ref.get("uid", ""), set())
            (deps.discard if remove else deps.add)(entry)

    def _check_kind(self, res: Resource, obj: dict) -> None:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        api_version, kind = obj.setdefault("apiVersion", res.api_version), obj.setdefault(
            "kind", res.kind)
        if (api_version, kind) != (res.api_version, res.kind):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({res.api_version})" if api_version != res.api_version else
                f'{kind} in version "{res.version}" cannot be handled as a {res.kind}')

    def _validate(self, res: Resource, obj: dict) -> None:
        if res.crd is None and res.kind == "CustomResourceDefinition":
            self.validator.check(obj, res.group)
        else:
            self.validator.check(obj, res.group)

    def create(self, res: Resource, obj: dict, namespace: str | None = None, *,
               validate: bool = True, dry_run: bool = False, keep_status: bool = False) -> dict:
        obj = clone(obj)
        self._check_kind(res, obj)
        meta = obj.setdefault("metadata", {})
        with self.lock:
            if res.namespaced:
                ns = namespace or meta.get("namespace") or "default"
                if meta.get("namespace") and meta["namespace"] != ns:
                    raise errors.bad_request("the namespace of the provided object does not "
                                             "match the namespace sent on the request")
                meta["namespace"] = ns
                namespace_obj = self.lookup(self.discovery.resolve("namespaces"), None, ns)
                if namespace_obj is None:
                    raise errors.not_found("", "namespaces", ns)
                if namespace_obj.obj["metadata"].get("deletionTimestamp"):
                    raise errors.ApiError(
                        403, "Forbidden", f'{res.ref} "{meta.get("name", "")}" is forbidden: '
                        f"unable to create new content in namespace {ns} because it is being "
                        "terminated", {"name": meta.get("name", ""), "kind": res.plural})
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + random_suffix()
            if meta.get("name") and self.lookup(res, meta.get("namespace"), meta["name"]):
                raise errors.already_exists(res.group, res.plural, meta["name"])
            uid = str(uuid.uuid4())
            meta.update(uid=uid, creationTimestamp=meta.get("creationTimestamp") or now(),
                        generation=1)
            for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(k, None)
            if not keep_status and "status" in res.subresources and res.kind != "Node":
                obj.pop("status", None)
            if not keep_status and res.crd is None and meta.get("name"):
                defaults.on_create(res.kind, obj, uid)
            for admit in self.admission:
                admit(res, obj, None)
            if self.webhooks is not None:
                self.webhooks.admit("mutating", "CREATE", res, obj, None, None, dry_run)
            if validate:
                self._validate(res, obj)
            if self.webhooks is not None:
                self.webhooks.admit("validating", "CREATE", res, obj, None, None, dry_run)
            if res.kind == "CustomResourceDefinition" and res.crd is None:
                self._establish(obj)
            if dry_run:
                return obj
            meta["resourceVersion"] = self._next_rv()
            return self._put(res, obj, None)

    def _establish(self, crd: dict) -> None:
        names = crd["spec"]["names"]
        crd["status"] = {
            "acceptedNames": {k: v for k, v in names.items()},
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m,
                 "lastTransitionTime": now()}
                for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                ("Established", "InitialNamesAccepted",
                                 "the initial names have been accepted"))]}
        self.crds[crd["metadata"]["name"]] = crd
        self.discovery.add_crd(crd)
        self.validator.crds.add(crd)

    def update(self, res: Resource, obj: dict, namespace: str | None, name: str, *,
               subresource: str | None = None, validate: bool = True,
               dry_run: bool = False) -> dict:
        obj = clone(obj)
        self._check_kind(res, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match "
                                     f"the name on the URL ({name})")
        with self.lock:
            old = self.get(res, namespace, name)
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(res.group, res.plural, name, errors.STALE)
            return self._write(res, old, obj, subresource, validate, dry_run)

    def _write(self, res: Resource, old: dict, new: dict, subresource: str | None,
               validate: bool, dry_run: bool = False) -> dict:
        old_meta = old["metadata"]
        if subresource == "status":
            new = {**old, "status": new.get("status")}
            if new["status"] is None:
                del new["status"]
        elif "status" in res.subresources and subresource is None:
            new = {k: v for k, v in new.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
        meta = new["metadata"] = dict(new.get("metadata") or {})
        for k in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if self.webhooks is not None and subresource != "all":
            self.webhooks.admit("mutating", "UPDATE", res, new, old, subresource, dry_run)
        ignore = ("metadata", "status")
        if any(new.get(k) != old.get(k) for k in set(new) | set(old) if k not in ignore):
            meta["generation"] = old_meta.get("generation", 1) + 1
        if new == old:
            return old  # a no-op write changes nothing, not even resourceVersion
        if validate:
            self._validate(res, new)
        if self.webhooks is not None and subresource != "all":
            self.webhooks.admit("validating", "UPDATE", res, new, old, subresource, dry_run)
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(res, new, None)
        meta["resourceVersion"] = self._next_rv()
        if res.kind == "CustomResourceDefinition" and res.crd is None:
            self._establish(new)
        return self._put(res, new, old)

    def patch(self, res: Resource, namespace: str | None, name: str, patch_type: str,
              body: Any, *, subresource: str | None = None, manager: str | None = None,
              validate: bool = True, dry_run: bool = False) -> tuple[dict, bool]:
        """Apply a patch; returns (object, created) since apply creates a missing object."""
        with self.lock:
            stored = self.lookup(res, namespace, name)
            if patch_type == APPLY_PATCH and not manager:
                raise errors.bad_request("PATCH, APPLY: fieldManager is required for apply "
                                         "patch")
            if stored is None:
                if patch_type != APPLY_PATCH or subresource:
                    raise errors.not_found(res.group, res.plural, name)
                self._check_kind(res, body)
                body.setdefault("metadata", {}).setdefault("name", name)
                created = self.create(res, body, namespace, validate=validate, dry_run=dry_run)
                self._applied[(created["metadata"]["uid"], manager or "", "")] = body
                return created, True
            current = stored.obj
            schema = (crd_schema(self.crds[res.crd], res.version) if res.crd else
                      builtin_schema(self.discovery.minor, res.api_version, res.kind))
            if patch_type == MERGE_PATCH:
                new = merge_patch(current, body)
            elif patch_type == STRATEGIC_PATCH:
                if res.crd:
                    raise errors.unsupported_media_type(patch_type)
                new = strategic_merge(current, body, schema)
            elif patch_type == JSON_PATCH:
                new = json_patch(current, body)
            elif patch_type == APPLY_PATCH:
                self._check_kind(res, body)
                key = (current["metadata"]["uid"], manager or "", subresource or "")
                new = apply_merge(current, body, self._applied.get(key), schema)
                if not dry_run:
                    self._applied[key] = body
            else:
                raise errors.unsupported_media_type(patch_type)
            if not isinstance(new, dict):
                raise errors.bad_request("the patch did not produce an object")
            rv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(
                body, dict) else None
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res.group, res.plural, name, errors.STALE)
            new.setdefault("metadata", {})
            if new.get("apiVersion") != res.api_version or new.get("kind") != res.kind:
                raise errors.bad_request("a patch may not change apiVersion or kind")
            return self._write(res, current, new, subresource, validate, dry_run), False

    # Deletes ----------------------------------------------------------------------------
    def delete(self, res: Resource, namespace: str | None, name: str, *,
               propagation: str | None = None, preconditions: dict | None = None,
               dry_run: bool = False) -> dict:
        with self.lock:
            current = self.get(res, namespace, name)
            meta = current["metadata"]
            for field in ("uid", "resourceVersion"):
                want = (preconditions or {}).get(field)
                if want and want != meta.get(field):
                    raise errors.conflict(
                        res.group, res.plural, name,
                        f"Precondition failed: {field.upper() if field == 'uid' else field} "
                        f"in precondition: {want}, {field} in object meta: {meta.get(field)}")
            if self.webhooks is not None:
                for phase in ("mutating", "validating"):
                    self.webhooks.admit(phase, "DELETE", res, None, current, None, dry_run)
            if dry_run:
                return current
            if res.key == ("", "namespaces"):
                return self._delete_namespace(res, current)
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return current
                new = {**current, "metadata": {**meta, "deletionTimestamp": now(),
                                               "deletionGracePeriodSeconds": 0,
                                               "resourceVersion": self._next_rv()}}
                return self._put(res, new, current)
            # Jobs keep the legacy "orphan" default of batch/v1 when the client names none.
            policy = propagation or ("Orphan" if res.key == ("batch", "jobs") else "Background")
            return self._remove(res, current, policy)

    def _remove(self, res: Resource, obj: dict, policy: str | None) -> dict:
        meta = obj["metadata"]
        key = (meta.get("namespace", "") if res.namespaced else "", meta["name"])
        previous = self._bucket(res).pop(key, None)
        self._sorted.pop(res.key, None)
        self._keep_subsets(res, key, None, previous.obj if previous else None)
        self._index_owners(res, obj, remove=True)
        gone = {**obj, "metadata": {**meta, "resourceVersion": self._next_rv()}}
        self._emit("DELETED", res, gone, obj)
        self._collect_dependents(meta["uid"], policy or "Background")
        if res.kind == "CustomResourceDefinition" and res.crd is None:
            self._drop_crd(meta["name"])
        ns = meta.get("namespace")
        if ns:
            self._maybe_finish_namespace(ns)
        return gone

    def _collect_dependents(self, uid: str, policy: str) -> None:
        for key, ns, name in list(self._owners.pop(uid, ())):
            stored = self._data.get(key, {}).get((ns, name))
            if stored is None:
                continue
            dep_res = next(r for r in self.discovery.by_path.values() if r.key == key)
            refs = stored.obj["metadata"].get("ownerReferences") or []
            rest = [r for r in refs if r.get("uid") != uid]
            if policy == "Orphan" or rest:
                new = clone(stored.obj)
                new["metadata"]["ownerReferences"] = rest
                if not rest:
                    del new["metadata"]["ownerReferences"]
                new["metadata"]["resourceVersion"] = self._next_rv()
                self._put(dep_res, new, stored.obj)
            else:
                self.delete(dep_res, ns, name, propagation="Background")

    def _drop_crd(self, name: str) -> None:
        crd = self.crds.pop(name, None)
        if crd is None:
            return
        for res in [r for r in self.discovery.by_path.values() if r.crd == name][:1]:
            for stored in list(self._bucket(res).values()):
                self._remove(res, stored.obj, "Background")
            self._data.pop(res.key, None)
            self._subsets.pop(res.key, None)
            self._indexes.pop(res.key, None)
        self.discovery.remove_crd(name)
        self.validator.crds.remove(name)

    def _delete_namespace(self, res: Resource, ns_obj: dict) -> dict:
        meta = ns_obj["metadata"]
        name = meta["name"]
        if not meta.get("deletionTimestamp"):
            new = clone(ns_obj)
            new["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0,
                                   resourceVersion=self._next_rv())
            new["status"] = {"phase": "Terminating"}
            self._put(res, new, ns_obj)
            for other in {r.key: r for r in self.discovery.by_path.values()
                          if r.namespaced}.values():
                for ns, obj_name in list(self._data.get(other.key, {})):
                    if ns == name and self.lookup(other, ns, obj_name):
                        self.delete(other, ns, obj_name, propagation="Background")
        self._maybe_finish_namespace(name)
        stored = self.lookup(res, None, name)
        return stored.obj if stored else ns_obj

    def _maybe_finish_namespace(self, name: str) -> None:
        ns_res = self.discovery.resolve("namespaces")
        stored = self.lookup(ns_res, None, name)
        if stored is None or not stored.obj["metadata"].get("deletionTimestamp"):
            return
        for key, bucket in self._data.items():
            if key != ns_res.key and any(k[0] == name for k in bucket):
                return
        obj = clone(stored.obj)
        obj["spec"] = {}
        self._remove(ns_res, obj, "Background")

    def delete_collection(self, res: Resource, namespace: str | None,
                          match: Callable[[dict], bool] | None) -> None:
        with self.lock:
            items, *_ = self.list(res, namespace, match)
            for stored in items:
                meta = stored.obj["metadata"]
                if self.lookup(res, meta.get("namespace"), meta["name"]):
                    self.delete(res, meta.get("namespace"), meta["name"])

    # Seeding ----------------------------------------------------------------------------
    def seed(self, objects: Iterable[dict], *, validate: bool = False) -> int:
        """Insert objects as they are (status included), skipping HTTP; fast for bulk."""
        count = 0
        with self.lock:
            for obj in objects:
                res = self.discovery.for_object(obj)
                if res is None:
                    raise errors.bad_request(
                        f"no served resource for {obj.get('apiVersion')} {obj.get('kind')}")
                if res.kind == "CustomResourceDefinition" and res.crd is None and not (
                        validate or self.admission):
                    self._seed_crd(res, obj)
                elif res.kind == "CustomResourceDefinition" and res.crd is None:
                    self.create(res, obj, validate=validate, keep_status=True)
                elif validate:
                    self.create(res, obj, validate=True, keep_status=True)
                else:
                    self._seed_one(res, obj)
                count += 1
        return count

    def _seed_crd(self, res: Resource, obj: dict) -> None:
        """``create`` of a CRD without copying its spec: the addons' schemas run to megabytes
        and every scenario installs the same parsed ones (never modified: writes replace)."""
        meta = dict(obj.get("metadata") or {})
        meta.pop("namespace", None)
        if self.lookup(res, None, meta["name"]):
            raise errors.already_exists(res.group, res.plural, meta["name"])
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=meta.get("creationTimestamp")
                    or now(), generation=1)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(k, None)
        crd = {**obj, "apiVersion": obj.get("apiVersion", res.api_version),
               "kind": obj.get("kind", res.kind), "metadata": meta}
        self._establish(crd)
        meta["resourceVersion"] = self._next_rv()
        self._put(res, crd, None)

    def _seed_one(self, res: Resource, obj: dict) -> None:
        meta = dict(obj.get("metadata") or {})
        if res.namespaced:
            meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next_rv()
        self._put(res, {**obj, "metadata": meta}, None)
