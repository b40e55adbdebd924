"""Install a package the way pip leaves it (modules + .dist-info with entry points), without pip."""

import re
import textwrap


def install_fake_distribution(site, name, entry_points, modules, group="plugdeck.plugins"):
    """What pip leaves behind for a package: its modules and a .dist-info with entry_points.txt.
    `entry_points` is {name: target} in `group`, or {group: {name: target}} when group is None."""
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{re.sub(r'[-_.]+', '_', name)}-1.0.dist-info"  # as pip names it: no '-' inside the name
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    groups = entry_points if group is None else {group: entry_points}
    (info / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()) + "\n" for g, declared in groups.items()))
