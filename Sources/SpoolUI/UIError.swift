import SpoolCore
import SpoolHTTP
import SpoolWire

/// Why the UI refused or could not answer a request: the layer's one error type, mapped to a response in
/// `UIHandler.response(for:)`.
public enum UIError: Error, Sendable {
    case notFound(String)
    case badRequest(String)
    case methodNotAllowed(allow: String)
    case unauthorized
    /// A POST without a valid CSRF token or from another origin; a request for a host name that is not loopback.
    case forbidden(String)
    case spool(SpoolError)

    var status: HTTPStatus {
        switch self {
        case .notFound: 404
        case .badRequest: 400
        case .methodNotAllowed: 405
        case .unauthorized: 401
        case .forbidden: 403
        case .spool(let e):
            switch e {
            case .notFound: 404
            case .busy, .conflict: 409
            case .invalidKey: 400
            default: 500
            }
        }
    }

    var message: String {
        switch self {
        case .notFound(let m), .badRequest(let m), .forbidden(let m): m
        case .methodNotAllowed(let allow): "method not allowed (allowed: \(allow))"
        case .unauthorized: "a token is required: open this page once as /?token=YOUR_TOKEN (it sets a cookie), or send Authorization: Bearer"
        case .spool(let e): "\(e)"
        }
    }
}
