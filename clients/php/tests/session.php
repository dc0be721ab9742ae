<?php
// Drives SessionServer\SessionHandler for test/php-handler.test.ts:
//   php session.php <port> <action> [session id] [argument]
// and prints what the test checks as one JSON line.

declare(strict_types=1);

require __DIR__ . '/../autoload.php';

[, $port, $action] = $argv;
$sid = $argv[3] ?? '';
$argument = $argv[4] ?? '';

// A CLI run has no cookies: the id comes from the command line.
ini_set('session.use_cookies', '0');
ini_set('session.use_only_cookies', '0');
ini_set('session.cache_limiter', '');
if ($action === 'strict') {
    ini_set('session.use_strict_mode', '1');
}
$lifetime = getenv('SESSION_LIFETIME');
session_set_save_handler(new SessionServer\SessionHandler('127.0.0.1', (int) $port, 15.0, $lifetime === false ? null : (int) $lifetime), true);
if ($sid !== '') {
    session_id($sid);
}

/** Each value with its PHP type, so the test sees ints as ints and objects by class. */
function describe(array $values): array
{
    $out = [];
    foreach ($values as $key => $value) {
        $out[$key] = match (true) {
            is_object($value) => ['type' => get_debug_type($value), 'value' => $value->getArrayCopy()],
            is_string($value) && preg_match('//u', $value) !== 1 => ['type' => 'bytes', 'value' => bin2hex($value)],
            default => ['type' => get_debug_type($value), 'value' => $value],
        };
    }
    return $out;
}

$started = microtime(true);
if (!session_start()) {
    echo json_encode(['error' => 'session_start failed']), "\n";
    exit(1);
}
switch ($action) {
    case 'write':
        $_SESSION['user'] = 'alice';
        $_SESSION['visits'] = 3;
        $_SESSION['price'] = 9.5;
        $_SESSION['admin'] = false;
        $_SESSION['cart'] = ['sku' => 'A1', 'qty' => 2];
        $_SESSION['tags'] = ['a', 'b'];
        $_SESSION['note'] = "two\nlines";
        $_SESSION['bytes'] = "\xff\xfe";
        $_SESSION['object'] = new ArrayObject(['x' => 1]);
        break;
    case 'read':
        echo json_encode(['id' => session_id(), 'session' => describe($_SESSION)]), "\n";
        break;
    case 'increment':
        $n = $_SESSION['n'] ?? 0;
        usleep(30_000);
        $_SESSION['n'] = $n + 1;
        break;
    case 'hold':
        // Holds the session (its lock) for <argument> ms, like a slow PHP request.
        echo json_encode(['waitedMs' => (int) ((microtime(true) - $started) * 1000)]), "\n";
        usleep((int) $argument * 1000);
        $_SESSION['held'] = 'by php';
        break;
    case 'regenerate':
        session_regenerate_id(true);
        echo json_encode(['id' => session_id()]), "\n";
        break;
    case 'destroy':
        session_destroy();
        exit(0);
    case 'strict':
        echo json_encode(['id' => session_id()]), "\n";
        break;
}
session_write_close();
