<?php

declare(strict_types=1);

namespace SessionServer;

/**
 * PHP's $_SESSION on sessionserver, with PHP's locking:
 *
 *     session_set_save_handler(new \SessionServer\SessionHandler('127.0.0.1', 9090), true);
 *     session_start();
 *
 * read() opens the session `rw`, so a second request of the same session waits (up to the
 * server's lock timeout) until the first one's write() or close() releases it, as with
 * PHP's own files handler. Each top-level $_SESSION key is one key on the server, typed
 * as Values describes, so Node apps read and write the same values; a value the script
 * did not change is written back exactly as it was stored. A session an express/fastify
 * app shares carries that app's `cookie`: see ExpressCookie for its expiry. This needs
 * session.serialize_handler=php_serialize, which the constructor sets.
 */
final class SessionHandler implements \SessionHandlerInterface, \SessionUpdateTimestampHandlerInterface
{
    private readonly Client $client;
    /** The session this connection holds open (rw, locked), between read() and write()/close(). */
    private ?string $held = null;
    /** @var array<array-key, string> the held session's values as stored when read() read them */
    private array $stored = [];

    /**
     * @param ?int $lifetime seconds a session lives without access (`ttl` on the server);
     *                       null: the server's max lifetime
     * @param ?string $tlsCa PEM file of the CA that signed the server's certificate: connects over tls://
     * @param ?string $tlsCert PEM file of a client certificate (and $tlsKey its key), for mutual TLS
     */
    public function __construct(
        string $host = '127.0.0.1',
        int $port = 9090,
        float $timeout = 30.0,
        private readonly ?int $lifetime = null,
        bool $tls = false,
        ?string $tlsCa = null,
        ?string $tlsCert = null,
        ?string $tlsKey = null,
    ) {
        $this->client = new Client($host, $port, $timeout, $tls, $tlsCa, $tlsCert, $tlsKey);
        if (session_status() !== PHP_SESSION_ACTIVE) {
            ini_set('session.serialize_handler', 'php_serialize');
        }
    }

    public function open(string $path, string $name): bool
    {
        return $this->attempt('open', function (): bool {
            $this->client->connect();
            return true;
        });
    }

    public function close(): bool
    {
        return $this->attempt('close', function (): bool {
            // Reached without write(): session_abort(), or a read-only session_start(). Nothing is written.
            if ($this->held !== null) {
                $this->held = null;
                $this->stored = [];
                $this->client->request('close');
            }
            return true;
        });
    }

    public function read(string $id): string|false
    {
        return $this->attempt('read', function () use ($id): string {
            if (ini_get('session.serialize_handler') !== 'php_serialize') {
                throw new \LogicException('SessionServer\\SessionHandler needs session.serialize_handler=php_serialize');
            }
            // `open` first closes whatever this connection held; rw waits for the writer lock.
            [$opened, $values] = $this->client->pipeline(["open {$id} rw", 'get_all json']);
            if (!$opened[0]) {
                throw new ServerException($opened[1]);
            }
            $this->held = $id;
            $this->stored = [];
            if (!$values[0]) {
                throw new ServerException($values[1]);
            }
            $stored = json_decode($values[1], true, 512, JSON_THROW_ON_ERROR);
            $stored = is_array($stored) ? $stored : [];
            $decoded = Values::decode($stored);
            if (ExpressCookie::isExpired($decoded)) {
                // The Node app's cookie for this session has expired: it is gone, for PHP as for Node.
                $this->expectOk($this->client->pipeline(['destroy', "open {$id} rw"]));
                return serialize([]);
            }
            $this->stored = $stored;
            return serialize($decoded);
        });
    }

    public function write(string $id, string $data): bool
    {
        return $this->attempt('write', function () use ($id, $data): bool {
            $values = $data === '' ? [] : unserialize($data);
            if (!is_array($values)) {
                throw new \LogicException('session data is not php_serialize()d');
            }
            $previous = $this->held === $id ? $this->stored : [];
            $lines = $this->held === $id ? [] : ["open {$id} rw"];
            $lines[] = self::putAll(Values::encode(ExpressCookie::touched($values), $previous));
            return $this->finish($lines);
        });
    }

    public function destroy(string $id): bool
    {
        return $this->attempt('destroy', function () use ($id): bool {
            $lines = $this->held === $id ? ['destroy'] : ["open {$id} rw", 'destroy'];
            $this->held = null;
            $this->stored = [];
            $this->expectOk($this->client->pipeline($lines));
            return true;
        });
    }

    public function gc(int $max_lifetime): int|false
    {
        return $this->attempt('gc', fn (): int => (int) $this->client->request("gc {$max_lifetime}"));
    }

    /**
     * session.use_strict_mode: an id the server does not know (or whose Node cookie has
     * expired) is refused, and PHP makes a new one.
     */
    public function validateId(string $id): bool
    {
        return $this->attempt('validateId', function () use ($id): bool {
            if ($this->held === $id) {
                return true;
            }
            [$opened, $values] = $this->client->pipeline(["open {$id} r", 'get_all json', 'close']);
            if (!$opened[0] || !$values[0]) {
                return false;
            }
            $stored = json_decode($values[1], true, 512, JSON_THROW_ON_ERROR);
            return !ExpressCookie::isExpired(Values::decode(is_array($stored) ? $stored : []));
        });
    }

    /**
     * session.lazy_write: the data did not change, so only the access time is recorded (and
     * the lock released); a Node app's cookie in the session is moved on, as on write().
     */
    public function updateTimestamp(string $id, string $data): bool
    {
        return $this->attempt('updateTimestamp', function () use ($id): bool {
            if ($this->held !== $id) {
                return $this->finish(["open {$id} r", 'touch']);
            }
            $values = Values::decode($this->stored);
            $touched = ExpressCookie::touched($values);
            return $this->finish([$touched === $values ? 'touch' : self::putAll(Values::encode($touched, $this->stored))]);
        });
    }

    /** @param array<string, string> $stored */
    private static function putAll(array $stored): string
    {
        return 'put_all ' . json_encode((object) $stored, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
    }

    /**
     * Ends a request's hold: the session's own lifetime (if configured), then `close`, which
     * writes and releases the lock; every reply must be ok.
     *
     * @param list<string> $lines
     */
    private function finish(array $lines): bool
    {
        if ($this->lifetime !== null) {
            $lines[] = "ttl {$this->lifetime}";
        }
        $lines[] = 'close';
        $this->held = null;
        $this->stored = [];
        $this->expectOk($this->client->pipeline($lines));
        return true;
    }

    /** @param list<array{0: bool, 1: string}> $replies */
    private function expectOk(array $replies): void
    {
        foreach ($replies as [$ok, $text]) {
            if (!$ok) {
                throw new ServerException($text);
            }
        }
    }

    /**
     * Runs a handler step; a failure becomes a warning naming the server's reason and the
     * `false` PHP expects (PHP then warns "Failed to read session data" and so on).
     *
     * @template T
     * @param callable(): T $step
     * @return T|false
     */
    private function attempt(string $what, callable $step): mixed
    {
        try {
            return $step();
        } catch (\Throwable $error) {
            if ($error instanceof ConnectionException) {
                $this->held = null;
            }
            trigger_error("sessionserver {$what}: {$error->getMessage()}", E_USER_WARNING);
            return false;
        }
    }
}
