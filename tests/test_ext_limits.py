"""``max_connections=N``: connection N+1 is answered 421 and closed."""

from extension_support import FQDN, Client, greeting, send_message

TOO_MANY = b"421 " + FQDN.encode() + b" Error: too many connections\r\n"


def test_the_connection_past_the_limit_gets_421_and_is_closed(serve):
    port = serve(max_connections=2).port
    with Client(port) as first, Client(port) as second:
        assert first.reply() == second.reply() == greeting()
        with Client(port) as third:
            assert third.rest() == TOO_MANY


def test_a_closed_session_frees_its_place(serve):
    port = serve(max_connections=1).port
    with Client(port) as first:
        first.reply()
        assert first.command(b"QUIT") == b"221 Bye\r\n"
        assert first.rest() == b""  # the server has closed its end
    with Client(port) as second:
        assert second.reply() == greeting()


def test_refused_connections_do_not_take_places(serve):
    controller = serve(max_connections=1)
    with Client(controller.port) as holder:
        holder.reply()
        for _ in range(20):
            with Client(controller.port) as refused:
                assert refused.rest() == TOO_MANY
        holder.command(b"QUIT")
        assert holder.rest() == b""
    # The holder has gone: the one place is free again.
    assert send_message(controller.port, "a@example.org", ["b@example.org"], "hi") == {}
    assert len(controller.server.messages) == 1


def test_a_flood_of_connections_past_the_limit_leaves_the_sessions_served(serve):
    # Hostile: 300 connections past the limit, opened 5 at a time (within
    # any listen backlog, CPython's was 5: a fuller accept queue would only
    # make the test wait on SYN retries).
    controller = serve(max_connections=3)
    holders = [Client(controller.port) for _ in range(3)]
    try:
        for holder in holders:
            assert holder.reply() == greeting()
        for _ in range(60):
            wave = [Client(controller.port) for _ in range(5)]
            try:
                assert [client.rest() for client in wave] == [TOO_MANY] * 5
            finally:
                for client in wave:
                    client.close()
        for holder in holders:
            assert holder.command(b"NOOP") == b"250 OK\r\n"
            holder.command(b"QUIT")
            assert holder.rest() == b""
    finally:
        for holder in holders:
            holder.close()
    assert send_message(controller.port, "a@example.org", ["b@example.org"], "hi") == {}
    assert len(controller.server.messages) == 1
