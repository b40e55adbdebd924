"""`plugdeck plugins add sql` and `plugdeck tools call NAME.run_query`, run in a subprocess as a user would."""

import json
import subprocess
import sys

PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]


def plugdeck(cli_env, *args, cwd=None):
    return subprocess.run([*PLUGDECK, *args], env=cli_env, cwd=cwd, capture_output=True, text=True, timeout=60)


def stored(tmp_path):
    path = tmp_path / "data" / "plugins.json"
    return json.loads(path.read_text())["plugins"] if path.exists() else {}


def test_add_chinook_then_query_it(cli_env, tmp_path, chinook):
    # A relative path, from the database's folder; it is stored absolute and works from anywhere.
    added = plugdeck(cli_env, "plugins", "add", "sql", "--name", "shop", "--url", "sqlite:///chinook.db",
                     "--max-rows", "50", "--timeout", "5", cwd=chinook.path.parent)
    assert added.returncode == 0, added.stderr
    assert "added sql plugin 'shop'" in added.stdout and "11 table(s): Album, Artist" in added.stdout
    assert stored(tmp_path)["shop"]["options"] == {"url": f"sqlite:///{chinook.path}", "max_rows": 50, "timeout": 5.0}

    sql = ("SELECT ar.Name, COUNT(*) AS tracks FROM Track t JOIN Album al ON al.AlbumId = t.AlbumId "
           "JOIN Artist ar ON ar.ArtistId = al.ArtistId GROUP BY ar.ArtistId ORDER BY tracks DESC LIMIT 2")
    result = plugdeck(cli_env, "tools", "call", "shop.run_query", json.dumps({"sql": sql}), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Name | tracks\nIron Maiden | 213\nU2 | 135\n(2 rows)\n"

    before = chinook.state()
    refused = plugdeck(cli_env, "tools", "call", "shop.run_query", '{"sql": "DROP TABLE Track"}', cwd=tmp_path)
    assert refused.returncode == 1 and "query_refused" in refused.stderr and "Traceback" not in refused.stderr
    assert chinook.state() == before
    listed = json.loads(plugdeck(cli_env, "plugins", "--json", cwd=tmp_path).stdout)
    shop = next(p for p in listed if p["name"] == "shop")
    assert [t["name"] for t in shop["tools"]] == ["list_tables", "describe_table", "run_query"]


def test_refuses_passwords_and_unreachable_databases(cli_env, tmp_path):
    canary = "canary-Pa55word-91c2"
    leaky = plugdeck(cli_env, "plugins", "add", "sql", "--name", "leaky", "--url",
                     f"postgresql://postgres:{canary}@127.0.0.1/test")
    assert leaky.returncode == 1 and "--password-env" in leaky.stderr
    assert canary not in leaky.stdout + leaky.stderr
    down = plugdeck(cli_env, "plugins", "add", "sql", "--name", "down", "--url", "postgresql://postgres@127.0.0.1:1/test")
    assert down.returncode == 1 and "could not connect" in down.stderr and "Nothing was added" in down.stderr
    missing = plugdeck(cli_env, "plugins", "add", "sql", "--name", "gone", "--url", f"sqlite:///{tmp_path}/absent.db")
    assert missing.returncode == 1 and "no SQLite database" in missing.stderr
    assert stored(tmp_path) == {} and not (tmp_path / "absent.db").exists()


def test_password_from_the_environment(cli_env, tmp_path, postgres_db):
    cli_env = {**cli_env, "SHOP_DB_PASSWORD": "canary-Pa55word-5e0d"}  # the server trusts local logins; it is still sent
    added = plugdeck(cli_env, "plugins", "add", "sql", "--name", "shop", "--url", postgres_db.url(postgres_db.reader),
                     "--password-env", "SHOP_DB_PASSWORD")
    assert added.returncode == 0, added.stderr
    assert "warning" not in added.stderr  # a reader role: nothing to warn about
    assert stored(tmp_path)["shop"]["options"]["password_env"] == "SHOP_DB_PASSWORD"
    assert "canary" not in (tmp_path / "data" / "plugins.json").read_text()
    count = plugdeck(cli_env, "tools", "call", "shop.run_query", '{"sql": "SELECT count(*) AS n FROM orders"}')
    assert count.stdout == "n\n8\n(1 row)\n", count.stderr
    del cli_env["SHOP_DB_PASSWORD"]
    unset = plugdeck(cli_env, "tools", "call", "shop.run_query", '{"sql": "SELECT 1"}')
    assert unset.returncode == 1 and "SHOP_DB_PASSWORD is not set" in unset.stderr


def test_a_superuser_account_needs_allow_superuser(cli_env, tmp_path, mariadb_db):
    """Issue 11 item 7a: root is refused unless the person says so explicitly, and the choice is stored."""
    refused = plugdeck(cli_env, "plugins", "add", "sql", "--name", "shop", "--url", mariadb_db.url())
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "plugdeck will not query MySQL/MariaDB as root@" in refused.stderr
    assert "--allow-superuser" in refused.stderr and "Nothing was added." in refused.stderr
    assert stored(tmp_path) == {}

    allowed = plugdeck(cli_env, "plugins", "add", "sql", "--name", "shop", "--url", mariadb_db.url(), "--allow-superuser")
    assert allowed.returncode == 0, allowed.stderr
    assert "warning: root@" in allowed.stderr and "allowed by allow_superuser" in allowed.stderr
    assert stored(tmp_path)["shop"]["options"]["allow_superuser"] is True
    count = plugdeck(cli_env, "tools", "call", "shop.run_query", '{"sql": "SELECT COUNT(*) AS n FROM orders"}')
    assert count.stdout == "n\n8\n(1 row)\n", count.stderr
