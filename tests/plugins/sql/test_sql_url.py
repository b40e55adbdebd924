"""Database URLs: the parts, and a label that never shows the password."""

import pytest

from plugdeck.plugins.sql.url import BadURL, parse_url


def test_sqlite_paths():
    assert parse_url("sqlite:///data/shop.db").database == "data/shop.db"
    assert parse_url("sqlite:////srv/data/shop.db").database == "/srv/data/shop.db"
    assert parse_url("sqlite:////srv/My%20Music.db").database == "/srv/My Music.db"
    for bad in ("sqlite://", "sqlite:///:memory:", "sqlite://host/file.db"):
        with pytest.raises(BadURL, match="names a file"):
            parse_url(bad)


def test_server_urls():
    url = parse_url("postgresql+psycopg://reader:s%40cret@db.example.com:6543/shop?sslmode=require")
    assert (url.backend, url.host, url.port, url.user, url.password, url.database) == (
        "postgresql", "db.example.com", 6543, "reader", "s@cret", "shop")
    assert url.options == {"sslmode": "require"}
    assert url.label() == "postgresql+psycopg://reader:***@db.example.com:6543/shop"
    assert "s@cret" not in repr(url)
    assert parse_url("postgres://localhost/test").backend == "postgresql"
    maria = parse_url("mariadb://root@[::1]/test")
    assert (maria.backend, maria.host, maria.password) == ("mysql", "::1", None)
    assert maria.label() == "mariadb://root@[::1]/test"
    assert parse_url("mysql://u:@h/db").password == ""  # an empty password is still a password in the URL


def test_bad_urls_are_explained_without_echoing_them():
    for bad, expected in [("oracle://scott:tiger@host/orcl", "not 'oracle'"), ("just a path.db", "not a database URL"),
                          ("postgresql://u:tiger@host:99999/db", "port")]:
        with pytest.raises(BadURL) as refused:
            parse_url(bad)
        assert expected in str(refused.value) and "tiger" not in str(refused.value)
