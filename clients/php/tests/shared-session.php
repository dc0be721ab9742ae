<?php
// Drives SessionServer\SessionHandler for test/cross-language.test.ts, on sessions an
// express app shares:
//   php shared-session.php <port> <session id> <action>
// and prints $_SESSION (each value with its PHP type) as one JSON line after the action.

declare(strict_types=1);

require __DIR__ . '/../autoload.php';

[, $port, $sid, $action] = $argv;

// A CLI run has no cookies: the id comes from the command line.
ini_set('session.use_cookies', '0');
ini_set('session.use_only_cookies', '0');
ini_set('session.cache_limiter', '');
ini_set('session.use_strict_mode', $action === 'strict' ? '1' : '0');
session_set_save_handler(new SessionServer\SessionHandler('127.0.0.1', (int) $port, 15.0), true);
session_id($sid);

/** Each value with its PHP type, so the test sees ints as ints, floats as floats and objects by class. */
function describe(array $values): object
{
    $out = [];
    foreach ($values as $key => $value) {
        $out[$key] = match (true) {
            is_object($value) => ['type' => get_debug_type($value), 'value' => $value->getArrayCopy()],
            is_string($value) && preg_match('//u', $value) !== 1 => ['type' => 'bytes', 'value' => bin2hex($value)],
            is_float($value) => ['type' => 'float', 'value' => var_export($value, true)],
            default => ['type' => get_debug_type($value), 'value' => $value],
        };
    }
    return (object) $out;
}

if (!session_start()) {
    echo json_encode(['error' => 'session_start failed']), "\n";
    exit(1);
}
switch ($action) {
    case 'login':
        // A PHP app logs the user in first: the whole session is PHP's.
        $_SESSION = [
            'user' => 'ada',
            'visits' => 3,
            'price' => 10.0,
            'ratio' => 0.5,
            'admin' => true,
            'nothing' => null,
            'tags' => ['a', 'b'],
            'cart' => ['sku' => 'A1', 'qty' => 2],
            'note' => "two\nlines",
            'bytes' => "\xff\xfe",
            'object' => new ArrayObject(['x' => 1]),
        ];
        break;
    case 'empty':
        $_SESSION = [];
        break;
    case 'prototype-keys':
        $_SESSION['constructor'] = 'from php';
        $_SESSION['__proto__'] = ['polluted' => true];
        $_SESSION['toString'] = 'not a function';
        $_SESSION['hasOwnProperty'] = 7;
        break;
    case 'bump':
        $_SESSION['php_visits'] = ($_SESSION['php_visits'] ?? 0) + 1;
        break;
    case 'read':
    case 'strict':
        // Nothing changes: session.lazy_write makes this an updateTimestamp.
        break;
}
$result = ['id' => session_id(), 'session' => describe($_SESSION)];
session_write_close();
echo json_encode($result, JSON_PRESERVE_ZERO_FRACTION), "\n";
