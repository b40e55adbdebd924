"""Install a package the way pip leaves it (modules + .dist-info with entry points), without pip."""

import textwrap


def install_fake_distribution(site, name, entry_points, modules):
    """What pip leaves behind for a package: its modules and a .dist-info with entry_points.txt."""
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[plugdeck.plugins]\n{lines}\n")
