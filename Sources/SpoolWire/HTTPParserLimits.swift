/// Every bound the parser enforces; each one caps memory or work an untrusted peer can make us spend.
public struct HTTPParserLimits: Sendable, Hashable {
    /// Request-line bytes excluding CRLF; longer is 414.
    public var maxRequestLine: Int = 8192
    /// Field-line bytes including their CRLFs (the request line and the final empty line are not counted); over is 431.
    public var maxHeaderBytes: Int = 32768
    /// Field lines in the head (and, separately, in the trailer section); more is 431.
    public var maxHeaderCount: Int = 100
    /// Body bytes after de-chunking; over is 413.
    public var maxBody: Int = 1 << 20
    /// Bytes of one chunk-size line (size plus extensions) excluding CRLF; over is 400.
    public var maxChunkLine: Int = 1024
    /// Chunk-extension bytes summed over one message; over is 400 (stops tiny-chunk-with-big-extension floods).
    public var maxChunkExtensionBytes: Int = 16384
    /// Trailer field-line bytes including CRLFs; over is 431.
    public var maxTrailerBytes: Int = 8192
    /// Empty lines tolerated before a request line (RFC 9112 section 2.2); more is 400.
    public var maxLeadingEmptyLines: Int = 8

    public init(maxRequestLine: Int = 8192, maxHeaderBytes: Int = 32768, maxHeaderCount: Int = 100, maxBody: Int = 1 << 20,
                maxChunkLine: Int = 1024, maxChunkExtensionBytes: Int = 16384, maxTrailerBytes: Int = 8192,
                maxLeadingEmptyLines: Int = 8) {
        self.maxRequestLine = maxRequestLine
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBody = maxBody
        self.maxChunkLine = maxChunkLine
        self.maxChunkExtensionBytes = maxChunkExtensionBytes
        self.maxTrailerBytes = maxTrailerBytes
        self.maxLeadingEmptyLines = maxLeadingEmptyLines
    }
}
