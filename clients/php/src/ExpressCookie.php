<?php

declare(strict_types=1);

namespace SessionServer;

/**
 * The `cookie` key that express-session and @fastify/session keep in a session they share
 * with PHP (`{"originalMaxAge":…,"expires":"2030-01-01T00:00:00.000Z",…}`). Its `expires`
 * ends the session in every language: once it has passed, PHP finds the session gone, as
 * the Node store does. Every PHP request moves it on by `originalMaxAge`, as each
 * express-session request does (its touch), so a user busy on PHP pages stays logged in
 * on the Node side.
 */
final class ExpressCookie
{
    public const KEY = 'cookie';

    /** @param array<array-key, mixed> $values decoded session values */
    public static function isExpired(array $values): bool
    {
        $cookie = $values[self::KEY] ?? null;
        if (!is_array($cookie) || !is_string($cookie['expires'] ?? null)) {
            return false;
        }
        try {
            $expires = new \DateTimeImmutable($cookie['expires']);
        } catch (\Exception) {
            return false;
        }
        return (float) $expires->format('U.u') <= microtime(true);
    }

    /**
     * The values with the cookie's `expires` moved to now + `originalMaxAge`; the same values
     * when there is no such cookie (none, or one without a max age: a browser-session cookie).
     *
     * @param array<array-key, mixed> $values
     * @return array<array-key, mixed>
     */
    public static function touched(array $values): array
    {
        $cookie = $values[self::KEY] ?? null;
        $maxAge = is_array($cookie) ? ($cookie['originalMaxAge'] ?? null) : null;
        if (!is_array($cookie) || !(is_int($maxAge) || is_float($maxAge)) || $maxAge <= 0) {
            return $values;
        }
        $ms = (int) floor(microtime(true) * 1000) + (int) $maxAge;
        // The form Node's Date#toJSON writes, so both sides read and compare the same text.
        $cookie['expires'] = gmdate('Y-m-d\TH:i:s', intdiv($ms, 1000)) . sprintf('.%03dZ', $ms % 1000);
        $values[self::KEY] = $cookie;
        return $values;
    }
}
