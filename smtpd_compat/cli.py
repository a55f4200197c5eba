"""The command-line twins of SMTPServer's extension options.

    --timeout SECONDS        timeout=SECONDS
    --max-connections N      max_connections=N
    --tls-cert FILE          starttls_context= a context with this
    --tls-key FILE             certificate (and key; default: FILE itself)
    --smtps                  ssl_context= that context instead: TLS from
                               the first byte, no STARTTLS
    --require-starttls       require_starttls=True
    --proxy-protocol         proxy_protocol=True

They are taken out of the arguments before CPython's own parser sees the
rest, so that parser, its ``--help`` text and its error messages stay
exactly CPython's.  Only long options are added: every short letter might
one day mean something else to someone.

Public names: take_options, OPTIONS.
"""

from __future__ import annotations

import getopt
import ssl
import sys

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple, TypeVar

    _Number = TypeVar('_Number', int, float)
del TYPE_CHECKING

__all__ = ['take_options', 'OPTIONS']

# long name -> takes a value?
OPTIONS = {
    'timeout': True,
    'max-connections': True,
    'tls-cert': True,
    'tls-key': True,
    'smtps': False,
    'require-starttls': False,
    'proxy-protocol': False,
}


def _fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(1)


def take_options(
    args: List[str], short: str, longs: List[str]
) -> Tuple[List[str], Dict[str, Any]]:
    """Split *args* into (CPython's arguments, SMTPServer keyword options).

    *short* and *longs* are CPython's getopt specification.  Exits with
    status 1 and a message on stderr for a bad value.
    """
    ours = [name + ('=' if value else '') for name, value in OPTIONS.items()]
    try:
        given, positional = getopt.getopt(args, short, longs + ours)
    except getopt.GetoptError:
        # Let CPython's parser report it, in CPython's words.  (Where only
        # our options made it fail, e.g. "--smtp" that is now ambiguous,
        # CPython's parser accepts it as before.)
        return args, {}
    theirs: List[str] = []
    values: Dict[str, str] = {}
    for option, value in given:
        name = option[2:] if option.startswith('--') else None
        if name in OPTIONS:
            values[name] = value
        elif _takes_value(option, short, longs):
            theirs.extend([option, value])
        else:
            theirs.append(option)
    if not values:
        return args, {}
    return theirs + positional, _server_options(values)


def _takes_value(option: str, short: str, longs: List[str]) -> bool:
    if option.startswith('--'):
        return option[2:] + '=' in longs
    return short[short.index(option[1]) + 1 :][:1] == ':'


def _number(
    values: Dict[str, str],
    name: str,
    convert: Callable[[str], _Number],
    is_valid: Callable[[_Number], bool],
) -> _Number:
    text = values[name]
    try:
        number: Optional[_Number] = convert(text)
    except ValueError:
        number = None
    if number is None or not is_valid(number):
        _fail('Invalid %s: %s' % (name.replace('-', ' '), text))
    return number


def _server_options(values: Dict[str, str]) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    if 'timeout' in values:
        options['timeout'] = _number(values, 'timeout', float, lambda seconds: seconds > 0)
    if 'max-connections' in values:
        options['max_connections'] = _number(
            values, 'max-connections', int, lambda count: count > 0
        )
    if 'proxy-protocol' in values:
        options['proxy_protocol'] = True
    certificate = values.get('tls-cert')
    if certificate is None:
        for needs_certificate in ('tls-key', 'smtps', 'require-starttls'):
            if needs_certificate in values:
                _fail('--%s needs --tls-cert' % needs_certificate)
        return options
    context = _server_context(certificate, values.get('tls-key'))
    if 'smtps' in values:
        if 'require-starttls' in values:
            _fail('--require-starttls makes no sense with --smtps')
        options['ssl_context'] = context
    else:
        options['starttls_context'] = context
        if 'require-starttls' in values:
            options['require_starttls'] = True
    return options


def _server_context(certificate: str, key: Optional[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as error:
        _fail('Cannot load TLS certificate %s: %s' % (certificate, error))
    return context
