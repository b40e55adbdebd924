"""The plugin store: a registry anyone can run, and the client built into plugdeck.

Trust rests on The Update Framework (python-tuf): the registry's root key delegates, through hashed
bins, one targets role per publisher namespace to that publisher's own key, so a publisher signs only
its namespace and the registry cannot sign in it. The client verifies every download through TUF
before anything is unpacked, shows what a package may do, asks, and pins what it installed in
`plugdeck.lock`.

    manifest   the package manifest (pydantic): tools, effects, permissions
    layout     where a package's files sit in the TUF repository (bins by namespace)
    keys       Ed25519 keys on disk (publisher and registry keys)
    repo       the registry's TUF repository: roles, delegations, snapshot/timestamp, root rotation
    service    the registry service (FastAPI, SQLite + a folder)
    publish    building a package and signing its namespace's metadata
    client     adding a store, searching, installing with consent
    lock       plugdeck.lock: what was installed, and the check a run makes against it
    runtime    the `store` plugin kind: a run loads an installed package only if it matches the lock
"""
