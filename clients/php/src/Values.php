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
     * @param array<array-key, mixed> $values
     * @return array<string, string>
     */
    public static function encode(array $values): array
    {
        $stored = [];
        $types = [];
        foreach ($values as $key => $value) {
            $key = (string) $key;
            if ($key === self::TYPES_KEY) {
                throw new \InvalidArgumentException('"' . self::TYPES_KEY . '" is reserved for the value types');
            }
            if (is_string($value) && self::isUtf8($value)) {
                $stored[$key] = $value;
            } elseif (is_string($value)) {
                $stored[$key] = base64_encode($value);
                $types[$key] = 'base64';
            } elseif (self::fitsJson($value)) {
                $stored[$key] = json_encode($value, JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
                $types[$key] = 'json';
            } else {
                $stored[$key] = base64_encode(serialize($value));
                $types[$key] = 'php';
            }
        }
        if ($types !== []) {
            $stored[self::TYPES_KEY] = json_encode($types, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        }
        return $stored;
    }

    /**
     * @param array<array-key, string> $stored
     * @return array<array-key, mixed>
     */
    public static function decode(array $stored): array
    {
        $types = [];
        if (isset($stored[self::TYPES_KEY])) {
            $decoded = json_decode($stored[self::TYPES_KEY], true);
            $types = is_array($decoded) ? $decoded : [];
        }
        $values = [];
        foreach ($stored as $key => $text) {
            if ((string) $key === self::TYPES_KEY) {
                continue;
            }
            $values[$key] = self::decodeValue((string) $text, $types[(string) $key] ?? null);
        }
        return $values;
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
