<?php

declare(strict_types=1);

// For apps without Composer: require this file (Composer users get the same from composer.json).
spl_autoload_register(static function (string $class): void {
    $prefix = 'SessionServer\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
