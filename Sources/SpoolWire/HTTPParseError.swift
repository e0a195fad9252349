/// Why the request parser refused a message: one named case per rule (the NIOHTTP1 model), mapped to the
/// status the server answers with in `status`, the only place where parse errors meet status codes.
public enum HTTPParseError: Error, Sendable, Hashable, CustomStringConvertible {
    case missingCRLFAfterChunkData
    case bareCRAfterChunkData
    case requestLineTooLong
    case tooManyLeadingEmptyLines
    case headerSectionTooLarge
    case tooManyHeaderFields
    case chunkSizeLineTooLong
    case trailerSectionTooLarge
    case tooManyTrailerFields
    case bareCR
    case bareLF
    case nulByte
    case malformedRequestLine
    case missingHTTPVersion
    case invalidMethod
    case invalidRequestTarget
    case httpVersionNotSupported
    case invalidHTTPVersion
    case fragmentInRequestTarget
    case unsupportedTargetForm
    case obsoleteLineFolding
    case fieldLineWithoutColon
    case emptyFieldName
    case invalidFieldName
    case controlCharacterInFieldValue
    case multipleHostFields
    case missingHost
    case invalidHost
    case multipleContentLengthFields
    case contentLengthWithTransferEncoding
    case transferEncodingInHTTP10
    case invalidTransferEncoding
    case emptyTransferEncoding
    case chunkedAppliedTwice
    case finalCodingNotChunked
    case transferCodingNotImplemented
    case invalidContentLength
    case contentLengthOverflow
    case contentLengthOverLimit
    case chunkSizeTooManyDigits
    case invalidChunkSize
    case controlCharacterInChunkExtension
    case chunkExtensionsTooLarge
    case whitespaceAfterChunkSize
    case chunkedBodyOverLimit

    /// The status to answer with (400 unless a more specific one applies).
    public var status: HTTPStatus {
        switch self {
        case .contentLengthOverflow, .contentLengthOverLimit, .chunkedBodyOverLimit: return .contentTooLarge
        case .requestLineTooLong: return .uriTooLong
        case .headerSectionTooLarge, .tooManyHeaderFields, .trailerSectionTooLarge, .tooManyTrailerFields: return .requestHeaderFieldsTooLarge
        case .transferCodingNotImplemented: return .notImplemented
        case .httpVersionNotSupported: return .httpVersionNotSupported
        default: return .badRequest
        }
    }

    /// A short reason for the JSON error body and the logs.
    public var reason: String {
        switch self {
        case .missingCRLFAfterChunkData: return "missing CRLF after chunk data"
        case .bareCRAfterChunkData: return "bare CR after chunk data"
        case .requestLineTooLong: return "request line too long"
        case .tooManyLeadingEmptyLines: return "too many empty lines before request line"
        case .headerSectionTooLarge: return "header section too large"
        case .tooManyHeaderFields: return "too many header fields"
        case .chunkSizeLineTooLong: return "chunk-size line too long"
        case .trailerSectionTooLarge: return "trailer section too large"
        case .tooManyTrailerFields: return "too many trailer fields"
        case .bareCR: return "bare CR"
        case .bareLF: return "bare LF line ending"
        case .nulByte: return "NUL byte"
        case .malformedRequestLine: return "malformed request line"
        case .missingHTTPVersion: return "missing HTTP version"
        case .invalidMethod: return "invalid method"
        case .invalidRequestTarget: return "invalid request target"
        case .httpVersionNotSupported: return "HTTP version not supported"
        case .invalidHTTPVersion: return "invalid HTTP version"
        case .fragmentInRequestTarget: return "fragment in request target"
        case .unsupportedTargetForm: return "only origin-form request targets are accepted"
        case .obsoleteLineFolding: return "obsolete line folding"
        case .fieldLineWithoutColon: return "field line without colon"
        case .emptyFieldName: return "empty field name"
        case .invalidFieldName: return "invalid field name"
        case .controlCharacterInFieldValue: return "control character in field value"
        case .multipleHostFields: return "more than one Host field"
        case .missingHost: return "missing Host field"
        case .invalidHost: return "invalid Host field"
        case .multipleContentLengthFields: return "more than one Content-Length field"
        case .contentLengthWithTransferEncoding: return "both Content-Length and Transfer-Encoding"
        case .transferEncodingInHTTP10: return "Transfer-Encoding in an HTTP/1.0 request"
        case .invalidTransferEncoding: return "invalid Transfer-Encoding"
        case .emptyTransferEncoding: return "empty Transfer-Encoding"
        case .chunkedAppliedTwice: return "chunked applied more than once"
        case .finalCodingNotChunked: return "final transfer coding is not chunked"
        case .transferCodingNotImplemented: return "transfer coding not implemented"
        case .invalidContentLength: return "invalid Content-Length"
        case .contentLengthOverflow: return "Content-Length too large"
        case .contentLengthOverLimit: return "Content-Length exceeds the body limit"
        case .chunkSizeTooManyDigits: return "chunk size has more than 16 hex digits"
        case .invalidChunkSize: return "invalid chunk size"
        case .controlCharacterInChunkExtension: return "control character in chunk extension"
        case .chunkExtensionsTooLarge: return "chunk extensions too large"
        case .whitespaceAfterChunkSize: return "whitespace after chunk size"
        case .chunkedBodyOverLimit: return "chunked body exceeds the body limit"
        }
    }

    public var description: String { "\(status.code) \(reason)" }
}
