/** How a session is opened: `r` shares it with other readers, `w`/`rw` take the writer lock. */
export type SessionMode = 'r' | 'w' | 'rw';
