<?php

declare(strict_types=1);

namespace SessionServer;

/**
 * The typed-value convention shared with the Node client (lib/client/values.ts), so PHP
 * and Node read the same values from one session:
 *
 * - a string is stored as it is (every client sees it verbatim);
 * - int, float, bool, null and arrays of those are stored as JSON, and their keys are
 *   listed in the reserved key `:types` (a JSON object, e.g. {"visits":"json"});
 * - a string that is not UTF-8 is stored base64-encoded, listed as "base64";
 * - anything JSON cannot carry faithfully (objects) is stored as base64 of serialize(),
 *   listed as "php": PHP gets the object back, Node sees opaque text.
 */
final class Values
{
    public const TYPES_KEY = ':types';

    /**
     * Encodes values for the server. With `$previous` (the values as stored when the session
     * was read), a value the app did not change is written back exactly as it was stored:
     * PHP cannot tell a Node object `{}` from `[]`, nor `{"0":"a"}` from `["a"]`, and
     * re-encoding what it read would change them for Node.
     *
     * @param array<array-key, mixed> $values
     * @param array<array-key, string> $previous
     * @return array<string, string>
     */
    public static function encode(array $values, array $previous = []): array
    {
        $previousTypes = self::types($previous);
        $stored = [];
        $types = [];
        foreach ($values as $key => $value) {
            $key = (string) $key;
            if ($key === self::TYPES_KEY) {
                throw new \InvalidArgumentException('"' . self::TYPES_KEY . '" is reserved for the value types');
            }
            $type = $previousTypes[$key] ?? null;
            if (array_key_exists($key, $previous) && serialize($value) === serialize(self::decodeValue((string) $previous[$key], $type))) {
                $stored[$key] = (string) $previous[$key];
            } else {
                [$stored[$key], $type] = self::encodeValue($value);
            }
            if ($type !== null) {
                $types[$key] = $type;
            }
        }
        if ($types !== []) {
            $stored[self::TYPES_KEY] = json_encode((object) $types, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        }
        return $stored;
    }

    /**
     * @param array<array-key, string> $stored
     * @return array<array-key, mixed>
     */
    public static function decode(array $stored): array
    {
        $types = self::types($stored);
        $values = [];
        foreach ($stored as $key => $text) {
            if ((string) $key === self::TYPES_KEY) {
                continue;
            }
            $values[$key] = self::decodeValue((string) $text, $types[(string) $key] ?? null);
        }
        return $values;
    }

    /** @return list{string, ?string} the stored text and its `:types` entry (null: a plain string) */
    private static function encodeValue(mixed $value): array
    {
        if (is_string($value) && self::isUtf8($value)) {
            return [$value, null];
        }
        if (is_string($value)) {
            return [base64_encode($value), 'base64'];
        }
        if (self::fitsJson($value)) {
            return [json_encode($value, JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR), 'json'];
        }
        return [base64_encode(serialize($value)), 'php'];
    }

    /**
     * @param array<array-key, string> $stored
     * @return array<array-key, string> the `:types` entries
     */
    private static function types(array $stored): array
    {
        $decoded = isset($stored[self::TYPES_KEY]) ? json_decode((string) $stored[self::TYPES_KEY], true) : null;
        return is_array($decoded) ? array_filter($decoded, 'is_string') : [];
    }

    private static function decodeValue(string $text, mixed $type): mixed
    {
        switch ($type) {
            case 'json':
                try {
                    return json_decode($text, true, 512, JSON_THROW_ON_ERROR);
                } catch (\JsonException) {
                    return $text;
                }
            case 'base64':
                $bytes = base64_decode($text, true);
                return $bytes === false ? $text : $bytes;
            case 'php':
                $bytes = base64_decode($text, true);
                // The session's own data, as PHP's files handler would unserialize it.
                $value = $bytes === false ? false : @unserialize($bytes);
                return $value === false && $bytes !== serialize(false) ? $text : $value;
            default:
                return $text;
        }
    }

    /** Whether JSON carries the value there and back unchanged: scalars and arrays of them, UTF-8 only. */
    private static function fitsJson(mixed $value): bool
    {
        if ($value === null || is_bool($value) || is_int($value)) {
            return true;
        }
        if (is_float($value)) {
            return is_finite($value);
        }
        if (is_string($value)) {
            return self::isUtf8($value);
        }
        if (!is_array($value)) {
            return false;
        }
        foreach ($value as $key => $item) {
            if ((is_string($key) && !self::isUtf8($key)) || !self::fitsJson($item)) {
                return false;
            }
        }
        return true;
    }

    private static function isUtf8(string $text): bool
    {
        return preg_match('//u', $text) === 1;
    }
}
