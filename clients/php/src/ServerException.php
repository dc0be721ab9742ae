<?php

declare(strict_types=1);

namespace SessionServer;

/** The server answered `err <message>`; the message is the server's text, verbatim. */
class ServerException extends \RuntimeException
{
}
