// A program written against the Go client that openapi-generator makes from partner-api.json.
// tests/e2e/test_openapi_clients.py generates that client, builds this program with it and runs
// it against a running gateway: every answer must decode into the generated types.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	partnerapi "example.com/callpipe/partnerapi"
)

func must(err error) {
	if err != nil {
		var apiErr *partnerapi.GenericOpenAPIError
		if errors.As(err, &apiErr) {
			fmt.Fprintf(os.Stderr, "%v: %s\n", err, apiErr.Body())
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
}

func main() {
	cfg := partnerapi.NewConfiguration()
	cfg.Servers = partnerapi.ServerConfigurations{{URL: os.Getenv("CALLPIPE_BASE_URL")}}
	api := partnerapi.NewAPIClient(cfg)
	ctx := context.WithValue(context.Background(), partnerapi.ContextAPIKeys, map[string]partnerapi.APIKey{
		"ApiKey":    {Key: os.Getenv("CALLPIPE_API_KEY")},
		"ApiSecret": {Key: os.Getenv("CALLPIPE_API_SECRET")},
	})
	tenant, subtenant, id := "tenant1", "subtenant1", os.Getenv("CALL_ID")
	result := map[string]any{}

	call := partnerapi.NewCallIn(id, "https://recordings.example.com/a.mp3", "2024-05-01T10:00:00Z",
		"2024-05-01T10:05:00Z", "+14155550100")
	item := partnerapi.NewCallItemIn(*call, *partnerapi.NewAgentIn("agent-1"), *partnerapi.NewCustomerIn("customer-1"))
	batch := partnerapi.NewBatchIn([]partnerapi.CallItemIn{*item})
	ingested, _, err := api.IngestionAPI.IngestCalls(ctx).XTenantId(tenant).XSubTenantId(subtenant).BatchIn(*batch).Execute()
	must(err)
	result["ingested"] = ingested.Data.Calls

	status, _, err := api.StatusAPI.GetCall(ctx, id).XTenantId(tenant).XSubTenantId(subtenant).Execute()
	must(err)
	result["status"] = status.Data.Status
	result["received"] = status.Data.Timestamps.GetReceived()

	for attempt := 0; attempt < 60; attempt++ {
		page, _, err := api.StatusAPI.ListCalls(ctx).XTenantId(tenant).Limit(10).Execute()
		must(err)
		for _, listed := range page.Data.Calls {
			if listed.CallId == id {
				result["listed_status"] = listed.Status
			}
		}
		if result["listed_status"] != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}

	config, _, err := api.AnalysisConfigurationAPI.GetAnalysisConfig(ctx).XTenantId(tenant).XSubTenantId(subtenant).Execute()
	must(err)
	result["labels"] = config.Data.Effective.Labels
	result["config_id"] = config.Data.ConfigId

	bad := partnerapi.NewCallIn("bad-"+id, "ftp://recordings.example.com/a.mp3", "2024-05-01T10:00:00Z",
		"2024-05-01T10:05:00Z", "+14155550100")
	badItem := partnerapi.NewCallItemIn(*bad, *partnerapi.NewAgentIn("agent-1"), *partnerapi.NewCustomerIn("customer-1"))
	_, response, err := api.IngestionAPI.IngestCalls(ctx).XTenantId(tenant).XSubTenantId(subtenant).
		BatchIn(*partnerapi.NewBatchIn([]partnerapi.CallItemIn{*badItem})).Execute()
	var apiErr *partnerapi.GenericOpenAPIError
	if !errors.As(err, &apiErr) {
		fmt.Fprintln(os.Stderr, "an invalid call was not refused")
		os.Exit(1)
	}
	refusal, ok := apiErr.Model().(partnerapi.ValidationErrorResponse)
	if !ok {
		fmt.Fprintf(os.Stderr, "422 not decoded as ValidationErrorResponse: %T\n", apiErr.Model())
		os.Exit(1)
	}
	result["refusal"] = map[string]any{"status": response.StatusCode, "message": refusal.Message, "errors": refusal.Errors}

	out, err := json.Marshal(result)
	must(err)
	fmt.Println(string(out))
}
