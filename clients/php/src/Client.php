<?php

declare(strict_types=1);

namespace SessionServer;

/**
 * A sessionserver protocol client over one connection: one request per line, one reply
 * line (`ok [payload]` or `err <message>`) per request, in order.
 */
final class Client
{
    /** @var resource|null */
    private $socket = null;

    /**
     * @param float $timeout seconds for connecting and for each reply; keep it above the
     *                       server's lock timeout (10 s by default), which an `open … rw` may wait out
     * @param ?string $tlsCa PEM file of the CA that signed the server's certificate (implies TLS);
     *                       null with $tls: the system's CAs
     * @param ?string $tlsCert PEM file of this client's certificate, for a server requiring mutual TLS
     * @param ?string $tlsKey PEM file of that certificate's key
     */
    public function __construct(
        private readonly string $host = '127.0.0.1',
        private readonly int $port = 9090,
        private readonly float $timeout = 30.0,
        private readonly bool $tls = false,
        private readonly ?string $tlsCa = null,
        private readonly ?string $tlsCert = null,
        private readonly ?string $tlsKey = null,
    ) {
    }

    public function connect(): void
    {
        if ($this->socket !== null) {
            return;
        }
        $errno = 0;
        $errstr = '';
        $tls = $this->tls || $this->tlsCa !== null;
        // The server's certificate is always verified, its name against the host connected to.
        $ssl = array_filter(
            ['verify_peer' => true, 'verify_peer_name' => true, 'cafile' => $this->tlsCa, 'local_cert' => $this->tlsCert, 'local_pk' => $this->tlsKey],
            static fn ($value) => $value !== null,
        );
        $socket = @stream_socket_client(
            ($tls ? 'tls' : 'tcp') . "://{$this->host}:{$this->port}",
            $errno,
            $errstr,
            $this->timeout,
            STREAM_CLIENT_CONNECT,
            stream_context_create(['ssl' => $ssl]),
        );
        if ($socket === false) {
            // A failed TLS handshake leaves $errstr empty; the reason is in the (silenced) warning.
            $reason = $errstr !== '' ? $errstr : (error_get_last()['message'] ?? 'connection failed');
            throw new ConnectionException("Cannot connect to {$this->host}:{$this->port}: {$reason}");
        }
        $seconds = (int) floor($this->timeout);
        stream_set_timeout($socket, $seconds, (int) (($this->timeout - $seconds) * 1_000_000));
        $this->socket = $socket;
    }

    /** Sends one request; returns the `ok` payload ('' for a bare ok); throws ServerException on `err`. */
    public function request(string $line): string
    {
        [$ok, $text] = $this->pipeline([$line])[0];
        if (!$ok) {
            throw new ServerException($text);
        }
        return $text;
    }

    /**
     * Sends all lines at once and reads their replies in order.
     *
     * @param list<string> $lines
     * @return list<array{0: bool, 1: string}> per line: [ok, payload or err message]
     */
    public function pipeline(array $lines): array
    {
        $this->connect();
        foreach ($lines as $line) {
            if (strpbrk($line, "\r\n") !== false) {
                throw new \InvalidArgumentException('A request is one line: no CR or LF');
            }
        }
        $this->write(implode("\n", $lines) . "\n");
        $replies = [];
        foreach ($lines as $_) {
            $replies[] = $this->readReply();
        }
        return $replies;
    }

    public function disconnect(): void
    {
        if ($this->socket !== null) {
            @fclose($this->socket);
            $this->socket = null;
        }
    }

    public function __destruct()
    {
        $this->disconnect();
    }

    private function write(string $data): void
    {
        while ($data !== '') {
            $written = @fwrite($this->socket, $data);
            if ($written === false || $written === 0) {
                $this->disconnect();
                throw new ConnectionException('Connection to sessionserver lost while writing');
            }
            $data = substr($data, $written);
        }
    }

    /** @return array{0: bool, 1: string} */
    private function readReply(): array
    {
        $line = fgets($this->socket);
        if ($line === false) {
            $timedOut = stream_get_meta_data($this->socket)['timed_out'] ?? false;
            // The reply stream is out of step now: this connection cannot be used again.
            $this->disconnect();
            throw new ConnectionException($timedOut
                ? "No reply from sessionserver within {$this->timeout} s"
                : 'Connection to sessionserver closed');
        }
        $line = rtrim($line, "\r\n");
        if ($line === 'ok' || str_starts_with($line, 'ok ')) {
            return [true, (string) substr($line, 3)];
        }
        if ($line === 'err' || str_starts_with($line, 'err ')) {
            return [false, (string) substr($line, 4)];
        }
        $this->disconnect();
        throw new ConnectionException('Unexpected reply from sessionserver: ' . substr($line, 0, 80));
    }
}
