<?php

declare(strict_types=1);

namespace SessionServer;

/** No connection, a dropped connection, or no reply within the timeout. */
class ConnectionException extends \RuntimeException
{
}
